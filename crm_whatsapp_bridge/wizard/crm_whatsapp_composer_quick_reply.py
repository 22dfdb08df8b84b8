from odoo import api, fields, models

# Placeholders a canned response may use in the WhatsApp composer.
PLACEHOLDERS = ("{customer}", "{salesperson}")


class CrmWhatsappComposer(models.TransientModel):
    _inherit = "crm.whatsapp.composer"

    canned_response_id = fields.Many2one(
        "mail.canned.response", "Quick Reply",
        help="A saved answer (Discuss canned responses, shortcut ::). {customer} and {salesperson} are "
             "replaced by the customer's and your name.")
    has_templates = fields.Boolean(compute="_compute_has_templates")

    @api.depends("account_id")
    def _compute_has_templates(self):
        Template = self.env["crm.whatsapp.template"]
        for composer in self:
            composer.has_templates = bool(composer.account_id) and bool(Template.search_count(
                [("account_id", "=", composer.account_id.id), ("can_send", "=", True)], limit=1))

    @api.onchange("canned_response_id")
    def _onchange_canned_response_id(self):
        if self.canned_response_id:
            self.body = self._fill_quick_reply(self.canned_response_id.substitution)

    def _fill_quick_reply(self, text):
        """The canned text with its placeholders replaced for this customer and this salesperson."""
        values = {
            "{customer}": self.partner_id.name or "",
            "{salesperson}": (self.lead_id.user_id or self.env.user).name or "",
        }
        for placeholder in PLACEHOLDERS:
            text = (text or "").replace(placeholder, values[placeholder])
        return text

    def action_sync_account_templates(self):
        """Outside the window with no template: fetch the number's templates, then come back here."""
        self.ensure_one()
        self.account_id.action_sync_templates()
        return self._open_action(self.env.context.get("active_model") or "crm.lead",
                                 self.env.context.get("active_id") or self.lead_id.id)
