import logging
from datetime import timedelta

from odoo import _, fields, models

from ..tools.payload import parse_message, parse_status
from .crm_inbox_event import InboxDeadLetter, InboxRetryLater

_logger = logging.getLogger(__name__)

# Meta can report a status before the transaction that sent the message has committed
# its wamid; such a status waits this long for its message before it is ignored.
STATUS_WAIT_FOR_MESSAGE = timedelta(minutes=10)


class CrmInboxEvent(models.Model):
    _inherit = "crm.inbox.event"

    def _whatsapp_account(self):
        account = self.env["crm.whatsapp.account"].search(
            [("phone_number_id", "=", self.channel_ref)], limit=1)
        if not account:
            raise InboxDeadLetter(_(
                "No active WhatsApp number has the phone number ID %s. Add it under "
                "CRM > Configuration > WhatsApp & Meta > WhatsApp Numbers, then requeue this event.", self.channel_ref))
        return account

    def _process_whatsapp_message(self):
        """Turn one inbound customer message into partner, lead, message and chatter post."""
        message = parse_message(self.payload)
        account = self._whatsapp_account()
        Message = self.env["crm.whatsapp.message"]
        existing = Message.search([("wamid", "=", message.wamid)], limit=1)
        if existing:  # already processed under another inbox row (e.g. after a requeue)
            return {"whatsapp_account_id": account.id, "lead_id": existing.lead_id.id}
        e164 = Message._normalise_wa_id(message.wa_id)
        # Media are fetched before anything is written: a download failure retries the whole event.
        media = account._graph_client().download_media(message.media.media_id) if message.media else None
        self._lock_customer(e164)
        partner = self.env["res.partner"]._whatsapp_find_or_create(e164, message.profile_name, account.company_id)
        lead = self.env["crm.lead"]._whatsapp_find_or_create(partner, account, message)
        wa_message = Message._create_inbound(message, account, lead, partner, media)
        lead._analytics_whatsapp_message_received(wa_message)
        wa_message._consent_apply_keywords()
        return {"whatsapp_account_id": account.id, "lead_id": lead.id}

    def _after_chunk(self, done_events):
        super()._after_chunk(done_events)
        wamids = done_events.filtered(lambda e: e.source == "whatsapp" and e.event_type == "message")
        if wamids:
            self.env["crm.whatsapp.message"].search([
                ("wamid", "in", wamids.mapped("external_id")), ("direction", "=", "in"),
            ])._notify_salesperson()

    def _process_whatsapp_status(self):
        """Apply a delivery status to the outbound message it belongs to."""
        status = parse_status(self.payload)
        account = self._whatsapp_account()
        wa_message = self.env["crm.whatsapp.message"].search(
            [("wamid", "=", status.wamid), ("direction", "=", "out")], limit=1)
        if not wa_message:
            if self.create_date > fields.Datetime.now() - STATUS_WAIT_FOR_MESSAGE:
                raise InboxRetryLater(_("The message %s is not known yet.", status.wamid))
            # Messages sent from outside Odoo (e.g. the WhatsApp Business app) have no record.
            _logger.info("Status %s for unknown outbound message %s ignored", status.status, status.wamid)
            return {"whatsapp_account_id": account.id}
        wa_message._apply_status(status)
        return {"whatsapp_account_id": account.id, "lead_id": wa_message.lead_id.id}
