import re

from odoo import api, fields, models
from odoo.exceptions import AccessError
from odoo.tools import SQL

from odoo.addons.mail.tools.discuss import Store

LEAD_CHANNEL = re.compile(r"^crm_whatsapp_bridge\.lead_(\d+)$")
LEAD_UPDATE = "crm_whatsapp_bridge/lead_update"


class IrWebsocket(models.AbstractModel):
    _inherit = "ir.websocket"

    def _build_bus_channel_list(self, channels):
        """An open lead form listens to ``crm_whatsapp_bridge.lead_<id>``, if the user may read the lead."""
        channels = list(channels)
        for channel in list(channels):
            match = isinstance(channel, str) and LEAD_CHANNEL.match(channel)
            if not match:
                continue
            channels.remove(channel)
            lead = self.env["crm.lead"].browse(int(match.group(1))).exists()
            try:
                lead.check_access("read")
            except AccessError:
                continue
            if lead:
                channels.append(lead)
        return super()._build_bus_channel_list(channels)


class CrmLead(models.Model):
    _inherit = "crm.lead"

    def _whatsapp_live_notify(self, changed_messages=None):
        """Tell open forms, and the kanban cards of the team, that these leads changed (sent on commit).

        ``changed_messages``: outbound messages whose chatter entry shows a new delivery state.
        """
        changed = changed_messages or self.env["crm.whatsapp.message"]
        for lead in self:
            payload = {"lead_id": lead.id, "message_ids": changed.filtered(
                lambda m, lead=lead: m.lead_id == lead).mail_message_id.ids}
            self.env["bus.bus"]._sendone(lead, LEAD_UPDATE, payload)
            (lead.user_id | lead.team_id.member_ids | lead.team_id.user_id)._bus_send(LEAD_UPDATE, payload)

    def _notify_get_recipients(self, message, msg_vals, **kwargs):
        """A burst of WhatsApp messages makes one email for users notified by email.

        Who was emailed about a customer message of this lead since the last reply
        sent from Odoo is not emailed again: the chatter has the rest of the burst.
        """
        recipients = super()._notify_get_recipients(message, msg_vals, **kwargs)
        if not self.env.context.get("crm_whatsapp_inbound") or len(self) != 1:
            return recipients
        email_partner_ids = tuple(r["id"] for r in recipients if r["notif"] == "email")
        if not email_partner_ids:
            return recipients
        self.env["mail.notification"].flush_model()
        self.env["crm.whatsapp.message"].flush_model(["mail_message_id", "lead_id", "direction", "message_date"])
        emailed = {row[0] for row in self.env.execute_query(SQL(
            """SELECT DISTINCT notif.res_partner_id
                 FROM mail_notification notif
                 JOIN crm_whatsapp_message wa ON wa.mail_message_id = notif.mail_message_id AND wa.direction = 'in'
                WHERE notif.res_partner_id IN %(partners)s AND notif.notification_type = 'email'
                  AND wa.lead_id = %(lead)s AND notif.mail_message_id != %(message)s
                  AND wa.message_date >= COALESCE((SELECT MAX(reply.message_date) FROM crm_whatsapp_message reply
                                                    WHERE reply.lead_id = %(lead)s AND reply.direction = 'out'),
                                                   '-infinity'::timestamp)""",
            partners=email_partner_ids, lead=self.id, message=message.id))}
        return [r for r in recipients if not (r["notif"] == "email" and r["id"] in emailed)]

    def whatsapp_live_messages(self, message_ids):
        """The chatter entries ``message_ids`` of this lead as the current user sees them (mail store data)."""
        self.ensure_one()
        self.check_access("read")
        messages = self.env["mail.message"].search([
            ("id", "in", message_ids), ("model", "=", self._name), ("res_id", "=", self.id)])
        return Store(messages, for_current_user=True).get_result()


class MailMessage(models.Model):
    _inherit = "mail.message"

    def _to_store(self, store, /, **kwargs):
        """Outbound WhatsApp entries are rendered from their state, in the reader's language.

        The body stored in the chatter is a snapshot in the sender's language; what a user sees
        is rebuilt from the message's current state and error code each time it is loaded.
        """
        super()._to_store(store, **kwargs)
        if "body" not in (kwargs.get("fields") or ["body"]):
            return
        linked = self.filtered(lambda m: m.model in ("crm.lead", "res.partner") and m.message_type == "comment")
        if not linked:
            return
        # sudo: salespeople read the entries; only the state of the WhatsApp message behind each is used.
        outbound = self.env["crm.whatsapp.message"].sudo().search([
            ("mail_message_id", "in", linked.ids), ("direction", "=", "out")])
        for wa_message in outbound:
            store.add(wa_message.mail_message_id, {"body": wa_message._outbound_chatter_body()})


class CrmWhatsappMessage(models.Model):
    _inherit = "crm.whatsapp.message"

    # Names a salesperson understands: "Waiting to send" until Odoo hands the message to WhatsApp,
    # then WhatsApp's own sent / delivered / read (or failed).
    state = fields.Selection(selection_add=[("queued", "Waiting to send")])

    @api.model_create_multi
    def create(self, vals_list):
        messages = super().create(vals_list)
        messages.lead_id._whatsapp_live_notify()
        return messages

    def write(self, vals):
        result = super().write(vals)
        if "state" in vals:
            self.lead_id._whatsapp_live_notify(self.filtered(lambda m: m.direction == "out"))
        return result
