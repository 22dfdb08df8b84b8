from odoo import _, fields, models


class CrmAccessTokenMixin(models.AbstractModel):
    """Tells a Sales Manager who set up a number or page that only an administrator may enter its token.

    Tokens are secrets (``groups='base.group_system'``): a manager can create the record but
    never read or write the token, so the form says whether it is set and whom to ask.
    """

    _name = "crm.access.token.mixin"
    _description = "Access token set by an administrator"

    access_token_set = fields.Boolean("Token Set", compute="_compute_access_token_set", compute_sudo=True)
    access_token_notice = fields.Char("Token", compute="_compute_access_token_set", compute_sudo=True)

    def _compute_access_token_set(self):
        admins = self.env.ref("base.group_system").users.filtered(lambda user: user.active and not user.share)
        names = ", ".join(admins.sorted("name")[:5].mapped("name"))
        for record in self:
            record.access_token_set = bool(record.access_token)
            record.access_token_notice = False if record.access_token else _(
                "Only a Settings administrator can enter the access token (it is a secret). Ask: %s.", names)


class CrmWhatsappAccount(models.Model):
    _name = "crm.whatsapp.account"
    _inherit = ["crm.whatsapp.account", "crm.access.token.mixin"]


class CrmMetaPage(models.Model):
    _name = "crm.meta.page"
    _inherit = ["crm.meta.page", "crm.access.token.mixin"]
