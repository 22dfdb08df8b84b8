import logging
from datetime import timedelta

from markupsafe import Markup, escape

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..tools import outbound
from ..tools.graph_client import GraphApiError

_logger = logging.getLogger(__name__)

# Meta lets a business write freely only this long after the customer's last message.
SERVICE_WINDOW = timedelta(hours=24)
STATE_BADGES = {
    "queued": "text-bg-secondary",
    "sent": "text-bg-info",
    "delivered": "text-bg-primary",
    "read": "text-bg-success",
    "failed": "text-bg-danger",
}


class CrmWhatsappMessage(models.Model):
    _inherit = "crm.whatsapp.message"

    user_id = fields.Many2one("res.users", "Sent By", readonly=True, index="btree_not_null")
    template_id = fields.Many2one("crm.whatsapp.template", "Template", readonly=True, ondelete="set null")
    template_values = fields.Json(readonly=True)
    error_help = fields.Text("What Happened", compute="_compute_error_help")

    @api.depends("error_code", "state")
    def _compute_error_help(self):
        for message in self:
            message.error_help = message._explain_error(message.error_code) if message.error_code else False

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
    def _create_outbound(self, thread, account, partner, values):
        """Record an outbound message (queued) and log it in ``thread``'s chatter as its author.

        ``thread`` is the lead (or contact) as the current user sees it: posting in
        its chatter checks the user may write on it. The message record itself is
        created as superuser, because salespeople never write message records.
        """
        self.env["crm.whatsapp.template"].browse(values.get("template_id"))._check_send_right()
        number = partner.whatsapp_number or partner.phone_sanitized
        if not number:
            raise UserError(_("%s has no WhatsApp number or valid phone number.", partner.display_name))
        message = self.sudo().create(dict(
            values,
            direction="out",
            state="queued",
            account_id=account.id,
            partner_id=partner.id,
            lead_id=thread.id if thread._name == "crm.lead" else False,
            wa_id=outbound.recipient(number),
            user_id=self.env.user.id,
            message_date=fields.Datetime.now(),
        ))
        mail_message = thread.message_post(
            body=message._outbound_chatter_body(),
            message_type="comment",
            subtype_xmlid="mail.mt_note",
            attachment_ids=message.attachment_ids.ids,
        )
        message.mail_message_id = mail_message.id
        return message

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

    def _send(self):
        """Hand queued messages to the Cloud API; failures stay on the record, explained."""
        for message in self:
            client = message.account_id._graph_client()
            try:
                wamid = client.send_message(message.account_id.phone_number_id,
                                            message._cloud_api_message(client))
            except GraphApiError as exc:
                _logger.info("WhatsApp message %s could not be sent: %s", message.id, exc)
                message.write({"state": "failed", "error_code": exc.code or 0,
                               "error_message": exc.message, "status_date": fields.Datetime.now()})
                message._notify_send_failure()
            else:
                message.write({"wamid": wamid, "error_code": 0, "error_message": False})
            message._refresh_chatter()

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
        if self.state == "failed":
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
        """Send a failed outbound message again (same content), for users who may see its lead
        (or, for a message sent from a contact, its sender and the all-leads group)."""
        self.check_access("read")
        for message in self:
            if message.direction != "out" or message.state != "failed":
                raise UserError(_("Only sent messages that failed can be retried."))
            if message.lead_id:
                message.lead_id.check_access("write")
            message.template_id._check_send_right()
            if message.message_type != "template":
                window_end = self._service_window_end(message.account_id, message.partner_id)
                if not window_end or window_end < fields.Datetime.now():
                    raise UserError(_("The 24-hour window is closed: the customer has not written in the "
                                      "last 24 hours. Send an approved template instead."))
        failed = self.sudo()
        failed.write({"state": "queued", "error_code": 0, "error_message": False})
        failed._send()
        return True
