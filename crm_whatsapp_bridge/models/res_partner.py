from odoo import api, models


class ResPartner(models.Model):
    # mail.thread.phone gives partners a stored, indexed E.164 ``phone_sanitized``,
    # so a customer is found whatever formatting their number was typed with.
    _name = "res.partner"
    _inherit = ["mail.thread.phone", "res.partner"]

    @api.model
    def _whatsapp_find_or_create(self, e164, profile_name):
        """The partner whose phone or mobile is ``e164``, created from the WhatsApp profile if none."""
        partner = self.search([("phone_sanitized", "=", e164)], order="is_company, id", limit=1)
        if not partner:
            partner = self.create({"name": profile_name or e164, "mobile": e164})
        return partner
