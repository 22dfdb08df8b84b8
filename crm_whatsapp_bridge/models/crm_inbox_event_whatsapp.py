import logging
from datetime import timedelta

from odoo import _, api, fields, models

from ..tools.payload import parse_message, parse_status
from .crm_inbox_event import InboxDeadLetter, InboxItem, InboxRetryLater
from .crm_lead_analytics import CONVERSATION_WINDOW

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
            raise self._whatsapp_no_account()
        return account

    def _whatsapp_no_account(self):
        return InboxDeadLetter(_(
            "No active WhatsApp number has the phone number ID %s. Add it under "
            "CRM > Configuration > WhatsApp & Meta > WhatsApp Numbers, then requeue this event.", self.channel_ref))

    # ------------------------------------------------------------------
    # Inbound messages, as a batch (see crm.inbox.event._process)
    # ------------------------------------------------------------------

    def _batch_prefetch_whatsapp_message(self):
        """The receiving numbers and the already recorded messages of the chunk, in two queries."""
        accounts = self.env["crm.whatsapp.account"].search([("phone_number_id", "in", self.mapped("channel_ref"))])
        recorded = self.env["crm.whatsapp.message"].search([("wamid", "in", self.mapped("external_id"))])
        return {
            "accounts": {account.phone_number_id: account for account in accounts},
            "recorded": {message.wamid: message for message in recorded},
        }

    def _batch_prepare_whatsapp_message(self, shared):
        """Parse the message, find its number, download its media; nothing is written here."""
        message = parse_message(self.payload)
        account = shared["accounts"].get(self.channel_ref)
        if not account:
            raise self._whatsapp_no_account()
        recorded = shared["recorded"].get(message.wamid)
        if recorded:  # already processed under another inbox row (e.g. after a requeue)
            return InboxItem(self, done_values={"whatsapp_account_id": account.id, "lead_id": recorded.lead_id.id})
        e164 = self.env["crm.whatsapp.message"]._normalise_wa_id(message.wa_id)
        # Media are fetched before anything is written: a download failure retries the event alone.
        media = account._graph_client().download_media(message.media.media_id) if message.media else None
        return InboxItem(self, customer=e164, lock_keys=(e164,),
                         data={"message": message, "account": account, "e164": e164, "media": media})

    @api.model
    def _batch_apply_whatsapp_message(self, items):
        """Contacts, leads, message records and chatter posts of a chunk's inbound messages.

        Steps (extension points): :meth:`res.partner._whatsapp_find_or_create` (all
        contacts of the chunk), :meth:`crm.lead._whatsapp_find_or_create` (all leads),
        :meth:`crm.whatsapp.message._create_inbound` (records and posts), then
        :meth:`_whatsapp_after_inbound` (per-message follow-ups such as analytics).
        """
        # A customer is matched with the contacts of the company of the number they wrote to.
        profiles = {}
        for item in items:
            company_profiles = profiles.setdefault(item.data["account"].company_id, {})
            if not company_profiles.get(item.data["e164"]):
                company_profiles[item.data["e164"]] = item.data["message"].profile_name
        partners = {}
        for company, company_profiles in profiles.items():
            found = self.env["res.partner"]._whatsapp_find_or_create(company_profiles, company)
            partners.update({(company, number): partner for number, partner in found.items()})

        def partner_of(item):
            return partners[(item.data["account"].company_id, item.data["e164"])]

        conversations = {}
        for item in items:
            partner, account = partner_of(item), item.data["account"]
            conversations.setdefault((partner.id, account.id), (partner, account, []))[2].append(item.data["message"])
        leads = self.env["crm.lead"]._whatsapp_find_or_create(list(conversations.values()))
        entries = []
        for item in items:
            partner, account = partner_of(item), item.data["account"]
            entries.append((item.data["message"], account, leads[(partner.id, account.id)], partner,
                            item.data["media"]))
        wa_messages = self.env["crm.whatsapp.message"]._create_inbound(entries)
        self._whatsapp_after_inbound(wa_messages)
        return {item.event.id: {"whatsapp_account_id": wa_message.account_id.id, "lead_id": wa_message.lead_id.id}
                for item, wa_message in zip(items, wa_messages, strict=True)}

    @api.model
    def _whatsapp_after_inbound(self, wa_messages):
        """Follow-ups of recorded inbound messages (in the batch's savepoint): analytics events,
        then consent keywords (their reply is the last thing that can fail).

        Only a message that may open a conversation is checked: the first of its lead
        in the batch, or one after more than a conversation window of silence.
        """
        previous = {}
        for wa_message in wa_messages.filtered("lead_id").sorted(lambda m: (m.message_date, m.id)):
            last = previous.get(wa_message.lead_id)
            if last is None or wa_message.message_date - last > CONVERSATION_WINDOW:
                wa_message.lead_id._analytics_whatsapp_message_received(wa_message)
            previous[wa_message.lead_id] = wa_message.message_date
        wa_messages._consent_apply_keywords()

    def _after_chunk(self, done_events):
        """The salesperson's toasts, then the welcome or away replies, for the chunk's inbound messages."""
        super()._after_chunk(done_events)
        wamids = done_events.filtered(lambda e: e.source == "whatsapp" and e.event_type == "message")
        if wamids:
            inbound = self.env["crm.whatsapp.message"].search([
                ("wamid", "in", wamids.mapped("external_id")), ("direction", "=", "in")])
            inbound._notify_salesperson()
            inbound._whatsapp_send_auto_replies()

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
