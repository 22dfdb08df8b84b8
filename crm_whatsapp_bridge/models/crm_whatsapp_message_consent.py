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
        inbound = self.filtered(lambda m: m.direction == "in" and m.partner_id).sorted(lambda m: (m.message_date, m.id))
        keywords = {message: match_keyword(message.body, message.account_id.opt_out_keywords,
                                           message.account_id.opt_in_keywords)
                    if message.message_type in KEYWORD_TYPES else None for message in inbound}

        def number(message):
            return message.partner_id._whatsapp_recipient() or message.partner_id

        settled = Consent._pairs_with_consent(inbound.partner_id, inbound.account_id)
        # Customers who wrote first are recorded together, except numbers that also sent a
        # keyword in these messages: a keyword may change the blacklist, so those go in order below.
        with_keyword = {number(message) for message, keyword in keywords.items() if keyword}
        started = {}
        for message in inbound:
            if (message.partner_id, message.account_id) not in settled and number(message) not in with_keyword:
                started.setdefault((message.partner_id, message.account_id), message)
        Consent._record_conversations_started(self.browse(message.id for message in started.values()))
        settled |= set(started)
        for message in inbound:
            account, partner = message.account_id, message.partner_id
            keyword = keywords[message]
            if not keyword and (partner, account) not in settled:
                Consent._record_conversations_started(message)
            settled.add((partner, account))
            if not keyword:
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
        if not partner._whatsapp_recipient():
            return _("%s has no WhatsApp number or valid phone number.", partner.display_name)
        if Consent._is_blacklisted(partner) or Consent._get(partner, account).marketing == "stopped":
            return _("%s opted out: no automatic messages.", partner.display_name)
        return False

    @api.model
    def _whatsapp_may_send_automatic(self, partner, account, template=None):
        """True when an automatic sender may write to ``partner`` from ``account`` (with ``template``)."""
        return not self._whatsapp_send_refusal(partner, account, template, automatic=True)
