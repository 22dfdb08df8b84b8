from markupsafe import Markup

from odoo import _, api, models


class ResPartner(models.Model):
    _inherit = "res.partner"

    @api.model
    def _crm_company_partner_domain(self, company):
        """Contacts a message or form answer received by ``company`` may be matched with:
        that company's and the shared ones (no company). No company given: all of them."""
        return self._check_company_domain(company) if company else []

    def _crm_whatsapp_numbers(self):
        """The WhatsApp ids (E.164 digits, no +) these contacts write from or were written to."""
        numbers = set(self.mapped("whatsapp_number")) | set(self.mapped("phone_sanitized"))
        return [number.lstrip("+") for number in numbers if number]

    def _crm_erase_whatsapp_data(self):
        """Remove what the addon holds about these people: the raw webhook events from or about
        their number (messages they sent, statuses of messages sent to them) and the texts and
        files of their WhatsApp messages, in the message log and in the chatter.

        Called when the contacts are deleted (Odoo's way of erasing a person, also the one of
        the Privacy Lookup app). The message rows stay, empty, so counts and states remain true.
        """
        numbers = self._crm_whatsapp_numbers()
        messages = self.env["crm.whatsapp.message"].sudo().search(
            ["|", ("partner_id", "in", self.ids), ("wa_id", "in", numbers)])
        messages.attachment_ids.unlink()
        messages.mail_message_id.write({"body": Markup("<i>%s</i>") % _("WhatsApp message erased")})
        messages.write({"body": False, "error_message": False, "template_values": False})
        if numbers:
            self.env["crm.inbox.event"].sudo().search([("sender", "in", numbers)]).unlink()

    @api.ondelete(at_uninstall=False)
    def _unlink_erase_whatsapp_data(self):
        self._crm_erase_whatsapp_data()
