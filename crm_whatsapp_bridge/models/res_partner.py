from odoo import _, api, fields, models
from odoo.exceptions import UserError


class ResPartner(models.Model):
    # mail.thread.phone gives partners a stored, indexed E.164 ``phone_sanitized``,
    # so a customer is found whatever formatting their number was typed with.
    _name = "res.partner"
    _inherit = ["mail.thread.phone", "res.partner"]

    whatsapp_number = fields.Char(
        "WhatsApp Number", index="btree_not_null", copy=False, readonly=True,
        help="The E.164 number this contact writes from on WhatsApp.")

    @api.model
    def _whatsapp_find_or_create(self, e164, profile_name, company=None):
        """The contact who writes from ``e164``, created from the WhatsApp profile if none.

        A contact already linked to the number wins; otherwise one whose phone or
        mobile is that number (whatever its formatting) is linked to it. Only contacts
        of ``company`` (the receiving number's) or shared ones are considered.
        """
        company_domain = self._crm_company_partner_domain(company)
        partner = self.search([("whatsapp_number", "=", e164)] + company_domain, order="id", limit=1)
        if not partner:
            partner = self.search([("phone_sanitized", "=", e164)] + company_domain, order="is_company, id", limit=1)
            if partner:
                partner.whatsapp_number = e164
        if not partner:
            partner = self.with_context(mail_create_nolog=True).create(
                {"name": profile_name or e164, "phone": e164, "whatsapp_number": e164,
                 "company_id": company.id if company else False})
        return partner

    @api.model
    def _meta_find_or_create(self, email, e164, values):
        """The contact with this email (first) or phone number, created from ``values`` if none."""
        partner = self.browse()
        company_domain = self._crm_company_partner_domain(self.env["res.company"].browse(values.get("company_id")))
        if email:
            partner = self.search([("email_normalized", "=", email)] + company_domain, order="is_company, id", limit=1)
        if not partner and e164:
            partner = self.search([("phone_sanitized", "=", e164)] + company_domain, order="is_company, id", limit=1)
        if not partner:
            partner = self.with_context(mail_create_nolog=True).create(
                dict(values, email=email or False, phone=e164 or False))
        return partner

    def action_whatsapp_compose(self):
        """Open the WhatsApp composer for this contact."""
        self.ensure_one()
        if not (self.whatsapp_number or self.phone_sanitized):
            raise UserError(_("%s has no WhatsApp number or valid phone number.", self.display_name))
        return self.env["crm.whatsapp.composer"]._open_action("res.partner", self.id)
