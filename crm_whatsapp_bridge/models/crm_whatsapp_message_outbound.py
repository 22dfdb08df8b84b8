import logging
from datetime import timedelta

from markupsafe import Markup, escape

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, config

from ..tools import outbound
from ..tools.cron_budget import CronBudget
from ..tools.graph_client import GraphApiError
from ..tools.payload import parse_status

_logger = logging.getLogger(__name__)

# Meta lets a business write freely only this long after the customer's last message.
SERVICE_WINDOW = timedelta(hours=24)
SEND_CRON_XMLID = "crm_whatsapp_bridge.ir_cron_whatsapp_send"
# Seconds a message request may wait for Meta's answer (per attempt).
SEND_TIMEOUT = 10
# A message still "sending" this long after its send started, with no worker holding it, was
# interrupted (worker killed, server restarted) between the request and saving Meta's answer.
SENDING_GRACE = timedelta(minutes=2)
# A status of an unknown wamid may belong to an interrupted send to the same number at most
# this long before the status (clocks of Meta and this server differ a little).
RECONCILE_WINDOW = timedelta(hours=1)
STATE_BADGES = {
    "queued": "text-bg-secondary",
    "sending": "text-bg-secondary",
    "unknown": "text-bg-warning",
    "sent": "text-bg-info",
    "delivered": "text-bg-primary",
    "read": "text-bg-success",
    "failed": "text-bg-danger",
}


class CrmWhatsappMessage(models.Model):
    _inherit = "crm.whatsapp.message"

    state = fields.Selection(selection_add=[
        ("queued",), ("sending", "Sending"), ("unknown", "Unknown: check before resending"),
    ], ondelete={"sending": lambda messages: messages.write({"state": "failed"}),
                 "unknown": lambda messages: messages.write({"state": "failed"})})
    send_started_at = fields.Datetime("Send Started On", readonly=True, copy=False)
    user_id = fields.Many2one("res.users", "Sent By", readonly=True, index="btree_not_null")
    template_id = fields.Many2one("crm.whatsapp.template", "Template", readonly=True, ondelete="set null")
    template_values = fields.Json(readonly=True)
    error_help = fields.Text("What Happened", compute="_compute_error_help")

    @api.depends("error_code", "error_message", "state")
    def _compute_error_help(self):
        for message in self:
            if message.error_code:
                message.error_help = message._explain_error(message.error_code)
            else:
                message.error_help = message.error_message if message.state == "unknown" else False

    def _explain_error(self, code):
        """Plain words for a Cloud API error code (what it means, what to do)."""
        if code == 131047:
            return _("More than 24 hours have passed since the customer last wrote. Only an approved "
                      "template can reopen the conversation.")
        if code == 131026:
            return _("WhatsApp could not deliver the message: the number may not use WhatsApp, may have "
                      "blocked this business, or has an outdated app.")
        if code in (131048, 131049):
            return _("Meta held the message back to protect the customer experience (spam or ecosystem "
                      "limits). Do not resend it now.")
        if code in (0, 190):
            return _("Meta refused the WhatsApp number's access token (expired or revoked). An "
                      "administrator must set a new token on the WhatsApp number.")
        if code == 10 or 200 <= code < 300:
            return _("The access token lacks a permission (whatsapp_business_messaging). An "
                      "administrator must fix the token.")
        if code in (4, 80007, 130429, 131056):
            return _("Meta's sending limits were reached. Wait a moment, then retry.")
        if 132000 <= code <= 132016:
            return _("Meta refused the template (variables, or the template is paused or disabled). "
                      "Check the template, then send again.")
        if code == 131051:
            return _("WhatsApp does not support this kind of message.")
        if code == 100:
            return _("Meta refused a parameter of the message (for example the number or the file).")
        if code in (1, 2, 131000):
            return _("Meta had a temporary problem. Retry in a moment.")
        return False

    # ------------------------------------------------------------------
    # Sending
    # ------------------------------------------------------------------

    @api.model
    def _last_inbound(self, account, partner):
        # The window is a fact of the conversation: a customer message the user may not read
        # (no lead any more) still opens it. Only its date is used.
        return self.sudo().search([("direction", "=", "in"), ("account_id", "=", account.id),
                            ("partner_id", "=", partner.id)], order="message_date desc, id desc", limit=1)

    @api.model
    def _service_window_end(self, account, partner):
        """When free-form messages to ``partner`` from ``account`` stop being allowed (or False)."""
        last = self._last_inbound(account, partner)
        return last.message_date + SERVICE_WINDOW if last else False

    @api.model
    def _queue_outbound(self, thread, account, partner, values):
        """Queue one outbound WhatsApp message; it is sent after the current transaction commits.

        This is the one way to send a WhatsApp message from Odoo (composer, automatic
        welcome or away messages, consent confirmations...). The message record
        (state ``queued``) and its chatter entry are written in the caller's
        transaction, and the send cron is triggered in that same transaction: if the
        transaction rolls back, nothing is recorded and nothing reaches Meta.

        :param thread: the ``crm.lead`` (or ``res.partner``) whose chatter logs the
            message, as the current user sees it: posting checks that the user may
            write on it, and the user is the message's author.
        :param account: the ``crm.whatsapp.account`` (business number) sending it.
        :param partner: the customer; their WhatsApp number, else their phone in
            E.164, is the recipient (:class:`UserError` when there is none).
        :param values: the message's own fields: ``message_type`` (``text``,
            ``template``, ``image``...), ``body``, and for a template ``template_id``
            and ``template_values``; for a file ``attachment_ids``; optionally
            ``context_wamid`` (reply to) and ``user_id`` (author, default the current user).
        :return: the ``crm.whatsapp.message`` record (state ``queued``).

        The caller checks what only it knows (24-hour window, consent, template
        variables). Delivery states then follow on the record and its chatter badge:
        ``sending``, ``sent``, ``delivered``, ``read``, ``failed``, or ``unknown`` when
        a send was interrupted before Meta's answer was saved (never resent blindly).
        """
        self.env["crm.whatsapp.template"].browse(values.get("template_id"))._check_send_right()
        number = partner._whatsapp_recipient()
        if not number:
            raise UserError(_("%s has no WhatsApp number or valid phone number.", partner.display_name))
        record_values = {"user_id": self.env.user.id, "message_date": fields.Datetime.now()}
        record_values.update(values)
        record_values.update(
            direction="out",
            state="queued",
            account_id=account.id,
            partner_id=partner.id,
            lead_id=thread.id if thread._name == "crm.lead" else False,
            wa_id=outbound.recipient(number),
        )
        # Salespeople never write message records themselves: the record is the system's.
        message = self.sudo().create(record_values)
        mail_message = thread.message_post(
            body=message._outbound_chatter_body(),
            message_type="comment",
            subtype_xmlid="mail.mt_note",
            attachment_ids=message.attachment_ids.ids,
        )
        message.mail_message_id = mail_message.id
        self._trigger_send()
        return message

    @api.model
    def _trigger_send(self):
        # The trigger row commits (or rolls back) with the message: the send starts after the commit.
        self.env.ref(SEND_CRON_XMLID).sudo()._trigger()

    # ------------------------------------------------------------------
    # The send cron (after the commit)
    # ------------------------------------------------------------------

    @api.model
    def _cron_send_outbound(self):
        """Send queued messages one by one, each with its own commits, within a :class:`CronBudget`."""
        budget = CronBudget(limit_time_cpu=config["limit_time_cpu"])
        self._mark_interrupted_sends()
        self.env.cr.commit()
        done = 0
        while True:
            message = self._claim_next()
            if not message:
                break
            message._send_claimed()
            self.env.cr.commit()
            done += 1
            if budget.exhausted():
                break
        self.env["ir.cron"]._crm_report_progress(SEND_CRON_XMLID, done, self._queued_count())

    @api.model
    def _queued_count(self):
        self.flush_model(["state", "direction"])
        self.env.cr.execute(SQL(
            "SELECT count(*) FROM crm_whatsapp_message WHERE direction = 'out' AND state = 'queued'"))
        return self.env.cr.fetchone()[0]

    @api.model
    def _claim_next(self):
        """Take the oldest queued message no other worker holds and commit it as ``sending``.

        The ``sending`` state is committed *before* the Cloud API call: if this worker
        dies after Meta accepted the message, the message is found in ``sending``
        and never sent again blindly. The row stays locked until Meta's answer is saved,
        so :meth:`_mark_interrupted_sends` of another worker never takes a live send.
        """
        self.flush_model()
        self.env.cr.execute(SQL(
            """SELECT id FROM crm_whatsapp_message
                WHERE direction = 'out' AND state = 'queued'
                ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"""))
        row = self.env.cr.fetchone()
        if not row:
            return self.browse()
        message = self.browse(row[0])
        message.write({"state": "sending", "send_started_at": fields.Datetime.now()})
        message._refresh_chatter()
        self.env.cr.commit()
        self.env.cr.execute(SQL("SELECT id FROM crm_whatsapp_message WHERE id = %s FOR UPDATE", message.id))
        return message

    def _outbound_client(self):
        self.ensure_one()
        account = self.account_id
        return outbound.CloudApiClient(account.sudo().access_token or "", account._graph_base_url(),
                                       timeout=SEND_TIMEOUT)

    def _send_claimed(self):
        """Hand one claimed message to the Cloud API and save the outcome (failures explained)."""
        self.ensure_one()
        client = self._outbound_client()
        try:
            wamid = client.send_message(self.account_id.phone_number_id, self._cloud_api_message(client))
        except outbound.SendOutcomeUnknown as exc:
            _logger.warning("WhatsApp message %s: outcome unknown (%s)", self.id, exc)
            self._mark_unknown(_("The Cloud API did not answer (%s): WhatsApp may have delivered the "
                                 "message. Check the conversation before sending it again.", exc.message))
        except GraphApiError as exc:
            _logger.info("WhatsApp message %s could not be sent: %s", self.id, exc)
            self.write({"state": "failed", "error_code": exc.code or 0,
                        "error_message": exc.message, "status_date": fields.Datetime.now()})
            self._refresh_chatter()
            self._notify_send_failure()
        else:
            self.write({"state": "sent", "wamid": wamid, "error_code": 0, "error_message": False,
                        "status_date": fields.Datetime.now()})
            self._refresh_chatter()

    def _mark_unknown(self, reason):
        self.write({"state": "unknown", "error_code": 0, "error_message": reason})
        self._refresh_chatter()
        self._notify_send_failure()

    @api.model
    def _mark_interrupted_sends(self):
        """Messages left ``sending`` by a worker that died: their outcome is unknown, never resent."""
        self.flush_model()
        self.env.cr.execute(SQL(
            """SELECT id FROM crm_whatsapp_message
                WHERE state = 'sending' AND send_started_at < %s
                FOR UPDATE SKIP LOCKED""", fields.Datetime.now() - SENDING_GRACE))
        interrupted = self.browse(row[0] for row in self.env.cr.fetchall())
        if interrupted:
            _logger.warning("%s WhatsApp message(s) interrupted while sending: marked unknown", len(interrupted))
            interrupted._mark_unknown(_(
                "Sending was interrupted after the message left for WhatsApp and before its answer was "
                "saved: WhatsApp may have delivered it. Check the conversation before sending it again."))

    @api.model
    def _adopt_status_wamid(self, status, phone_number_id):
        """Give an interrupted send the wamid of a status that matches it, so the status applies.

        A status of a wamid Odoo never saw, for the same business number and customer,
        belongs to the one message of that conversation whose outcome is unknown: adopt
        it only when exactly one such message exists (the inbox retries a status of an
        unknown wamid for 10 minutes, long enough for an interrupted send to be marked).
        """
        if not (status.wamid and status.recipient_id and status.timestamp):
            return
        candidates = self.search([
            ("direction", "=", "out"), ("state", "=", "unknown"), ("wamid", "=", False),
            ("account_id.phone_number_id", "=", phone_number_id), ("wa_id", "=", status.recipient_id),
            ("send_started_at", ">=", status.timestamp - RECONCILE_WINDOW),
            ("send_started_at", "<=", status.timestamp + RECONCILE_WINDOW),
        ])
        if len(candidates) == 1:
            _logger.info("WhatsApp message %s reconciled with %s from its status", candidates.id, status.wamid)
            candidates.write({"wamid": status.wamid, "error_message": False})

    def _cloud_api_message(self, client):
        """The Cloud API message object of this record (uploading its file if it has one)."""
        self.ensure_one()
        if self.message_type == "template":
            template = self.template_id
            return outbound.template_message(
                self.wa_id, template.name, template.language, self.template_values or {},
                template.parameter_format, template.body)
        if self.attachment_ids:
            attachment = self.attachment_ids[0]
            media_id = client.upload_media(self.account_id.phone_number_id, attachment.raw,
                                           attachment.mimetype, attachment.name)
            return outbound.media_message(self.wa_id, self.message_type, media_id,
                                          caption=self.body, filename=attachment.name)
        return outbound.text_message(self.wa_id, self.body, reply_to=self.context_wamid)

    def _refresh_chatter(self):
        """Re-render the chatter entries of outbound messages with their current state."""
        for message in self.filtered(lambda m: m.direction == "out" and m.mail_message_id):
            message.mail_message_id.sudo().body = message._outbound_chatter_body()

    def _outbound_chatter_body(self):
        self.ensure_one()
        state_label = dict(self._fields["state"]._description_selection(self.env))[self.state]
        head = Markup('<span class="badge text-bg-success me-1">WhatsApp</span>'
                      '<span class="badge %s o_crm_whatsapp_state">%s</span>') % (
            STATE_BADGES.get(self.state, "text-bg-secondary"), state_label)
        lines = [head]
        if self.message_type == "template":
            lines.append(Markup("<i>%s</i>") % _("Template: %s", self.template_id.name or ""))
        if self.body:
            lines.append(escape(self.body).replace("\n", Markup("<br/>")))
        if self.state in ("failed", "unknown"):
            error = self.error_help or self.error_message or ""
            lines.append(Markup('<span class="text-danger">%s</span>') % error)
        return Markup("<br/>").join(lines)

    def _notify_send_failure(self):
        """Tell the author, live, that a message did not go out."""
        for message in self.filtered("user_id"):
            message.user_id._bus_send("simple_notification", {
                "type": "danger",
                "sticky": True,
                "title": _("WhatsApp message not sent"),
                "message": _("To %(customer)s: %(reason)s",
                             customer=message.partner_id.display_name or message.wa_id,
                             reason=message.error_help or message.error_message),
            })

    def _apply_status(self, status):
        previous = self.state
        state = super()._apply_status(status)
        if state != previous and self.direction == "out":
            self._refresh_chatter()
            if state == "failed":
                self._notify_send_failure()
        return state

    def action_retry(self):
        """Queue a failed (or unknown, after the user checked) outbound message again, same content.

        Only for users who may see its lead (or, for a message sent from a contact, its sender and
        the all-leads group)."""
        self.check_access("read")
        for message in self:
            if message.direction != "out" or message.state not in ("failed", "unknown"):
                raise UserError(_("Only sent messages that failed, or whose outcome is unknown, can be retried."))
            if message.lead_id:
                message.lead_id.check_access("write")
            message.template_id._check_send_right()
            if message.message_type != "template":
                window_end = self._service_window_end(message.account_id, message.partner_id)
                if not window_end or window_end < fields.Datetime.now():
                    raise UserError(_("The 24-hour window is closed: the customer has not written in the "
                                      "last 24 hours. Send an approved template instead."))
        retried = self.sudo()
        retried.write({"state": "queued", "error_code": 0, "error_message": False, "send_started_at": False})
        retried._refresh_chatter()
        self._trigger_send()
        return True


class CrmInboxEvent(models.Model):
    _inherit = "crm.inbox.event"

    def _process_whatsapp_status(self):
        # A status can be the only sign that an interrupted send did reach WhatsApp.
        status = parse_status(self.payload)
        Message = self.env["crm.whatsapp.message"]
        if status.wamid and not Message.search_count([("wamid", "=", status.wamid)], limit=1):
            Message._adopt_status_wamid(status, self.channel_ref)
        return super()._process_whatsapp_status()
