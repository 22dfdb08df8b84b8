from odoo import _, api, fields, models

from ..tools.waba import match_keyword

# Inbound message types whose text a customer typed or tapped (a quick-reply button such as "Stop promotions").
KEYWORD_TYPES = ("text", "button", "interactive")


class CrmWhatsappMessage(models.Model):
    _inherit = "crm.whatsapp.message"

    def _consent_apply_keywords(self):
        """Update the consent of the senders of these inbound messages.

        A message that is only an opt-out (opt-in) keyword stops (allows) marketing
        messages, is noted in the lead's chatter and answered once with the number's
        confirmation while the 24-hour window is open. Any other message only opens
        a consent record when the contact has none (the customer started the
        conversation): it never re-subscribes a contact who opted out.
        """
        Consent = self.env["crm.whatsapp.consent"]
        inbound = self.filtered(lambda m: m.direction == "in" and m.partner_id)
        for message in inbound.sorted(lambda m: (m.message_date, m.id)):
            account, partner = message.account_id, message.partner_id
            keyword = (match_keyword(message.body, account.opt_out_keywords, account.opt_in_keywords)
                       if message.message_type in KEYWORD_TYPES else None)
            if not keyword:
                if not Consent._get(partner, account):
                    blacklisted = Consent._is_blacklisted(partner)
                    Consent._record(
                        partner, account, "stopped" if blacklisted else "allowed",
                        "blacklist" if blacklisted else "conversation",
                        _("The number is on the phone blacklist.") if blacklisted
                        else _("The customer wrote first on WhatsApp."),
                        at=message.message_date, message=message)
                continue
            stop = keyword == "stop"
            consent = Consent._record(partner, account, "stopped" if stop else "allowed", "keyword",
                                      _("The customer wrote “%s”.", (message.body or "").strip()),
                                      at=message.message_date, message=message)
            if not consent:
                continue
            if message.lead_id:
                message.lead_id._consent_post(consent)
            reply = ((account.opt_out_reply if stop else account.opt_in_reply) or "").strip()
            window_end = self._service_window_end(account, partner)
            if reply and window_end and window_end > fields.Datetime.now():
                message._consent_send_reply(reply)

    def _consent_send_reply(self, text):
        """Answer this inbound message with ``text`` (the one place consent replies are queued from).

        The reply is queued: it is sent after the transaction commits, so a retried event never
        sends it twice.
        """
        self.ensure_one()
        return self._queue_outbound(self.lead_id or self.partner_id, self.account_id, self.partner_id,
                                    {"message_type": "text", "body": text})

    @api.model
    def _whatsapp_send_refusal(self, partner, account, template=None, automatic=False):
        """Why a message to ``partner`` from ``account`` may not go out (False when it may).

        A template must be sendable (approved, not paused/disabled, quality not red);
        a marketing template needs the contact's marketing consent. Automatic messages
        (welcome, away, ...) never go to a contact who opted out or is blacklisted.
        """
        if template and template.send_block_reason:
            return _("The template %(template)s cannot be sent: %(reason)s",
                     template=template.display_name, reason=template.send_block_reason)
        Consent = self.env["crm.whatsapp.consent"]
        if template and template.category == "marketing":
            return Consent._marketing_refusal(partner, account)
        if not automatic:
            return False
        if not Consent._number_of(partner):
            return _("%s has no WhatsApp number or valid phone number.", partner.display_name)
        if Consent._is_blacklisted(partner) or Consent._get(partner, account).marketing == "stopped":
            return _("%s opted out: no automatic messages.", partner.display_name)
        return False

    @api.model
    def _whatsapp_may_send_automatic(self, partner, account, template=None):
        """True when an automatic sender may write to ``partner`` from ``account`` (with ``template``)."""
        return not self._whatsapp_send_refusal(partner, account, template, automatic=True)
