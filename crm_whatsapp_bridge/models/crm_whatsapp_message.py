import mimetypes

from markupsafe import Markup, escape

from odoo import _, api, fields, models

from odoo.addons.phone_validation.tools import phone_validation

from ..tools.payload import PayloadError
from ..tools.phone import wa_id_to_e164

MESSAGE_TYPES = [
    ("text", "Text"),
    ("image", "Image"),
    ("video", "Video"),
    ("audio", "Audio"),
    ("document", "Document"),
    ("sticker", "Sticker"),
    ("location", "Location"),
    ("contacts", "Contacts"),
    ("interactive", "Interactive Reply"),
    ("button", "Template Button"),
    ("reaction", "Reaction"),
    ("order", "Order"),
    ("system", "System"),
    ("template", "Template"),
    ("unsupported", "Unsupported"),
]
STATE_RANK = {"received": 0, "queued": 0, "sent": 1, "delivered": 2, "read": 3}


class CrmWhatsappMessage(models.Model):
    """One WhatsApp message of a customer conversation, in either direction."""

    _name = "crm.whatsapp.message"
    _description = "WhatsApp Message"
    _order = "message_date desc, id desc"
    _rec_name = "wamid"
    _check_company_auto = True

    # Empty only for an outbound message Meta has not accepted yet.
    wamid = fields.Char("WhatsApp Message ID", readonly=True, copy=False)
    direction = fields.Selection([("in", "Received"), ("out", "Sent")], required=True, readonly=True)
    account_id = fields.Many2one("crm.whatsapp.account", "WhatsApp Number", required=True,
                                 readonly=True, ondelete="restrict", index=True)
    company_id = fields.Many2one(related="account_id.company_id", store=True, index=True)
    lead_id = fields.Many2one("crm.lead", "Lead", readonly=True, ondelete="set null", index=True,
                              check_company=True)
    partner_id = fields.Many2one("res.partner", "Customer", readonly=True, ondelete="set null",
                                 index="btree_not_null", check_company=True)
    wa_id = fields.Char("Customer WhatsApp ID", readonly=True)
    message_type = fields.Selection(MESSAGE_TYPES, required=True, readonly=True, default="text")
    original_type = fields.Char(readonly=True, help="The type Meta sent, when this app does not know it.")
    body = fields.Text(readonly=True)
    state = fields.Selection(
        [("received", "Received"), ("queued", "Queued"), ("sent", "Sent"),
         ("delivered", "Delivered"), ("read", "Read"), ("failed", "Failed")],
        required=True, readonly=True, default="received", index=True)
    error_code = fields.Integer(readonly=True)
    error_message = fields.Text(readonly=True)
    message_date = fields.Datetime("Date", readonly=True, default=fields.Datetime.now)
    status_date = fields.Datetime("Last Status On", readonly=True)
    context_wamid = fields.Char("Reply To", readonly=True)
    media_id = fields.Char("Media ID", readonly=True)
    attachment_ids = fields.Many2many("ir.attachment", string="Attachments", readonly=True)
    # Indexed: the chatter looks its WhatsApp messages up by it, and deleting chatter
    # messages (a lead's, with the lead) must not scan this table once per message.
    mail_message_id = fields.Many2one("mail.message", "Chatter Message", readonly=True,
                                      ondelete="set null", index="btree_not_null")
    conversation_id = fields.Char(readonly=True)
    pricing_category = fields.Char(readonly=True)
    billable = fields.Boolean(readonly=True)

    _sql_constraints = [
        ("wamid_uniq", "unique(wamid)", "A WhatsApp message can only be recorded once."),
    ]

    @api.model
    def _normalise_wa_id(self, wa_id):
        """E.164 number of a WhatsApp id, through phone_validation (phonenumbers)."""
        e164 = phone_validation.phone_format(
            "+" + (wa_id or "").lstrip("+"), None, None, force_format="E164", raise_exception=False)
        e164 = e164 if e164 and e164.startswith("+") else wa_id_to_e164(wa_id)
        if not e164:
            raise PayloadError(_("%s is not a phone number", wa_id))
        return e164

    @api.model
    def _create_inbound(self, entries):
        """Record inbound messages and post each in its lead's chatter (or its contact's).

        :param list entries: ``(message, account, lead, partner, media)`` tuples in
            arrival order: an :class:`InboundMessage`, its number, its lead (an empty
            record to record it on the contact), its contact, and the downloaded
            ``(content, mime type)`` or None
        :return: the new crm.whatsapp.message records, in the order of ``entries``

        Attachments and message records are created with one ``create`` each; each
        message is one ``message_post``, whose notification emails go through the mail
        queue. Each lead's unread badge is raised once for the batch.
        """
        attachment_values = [
            self._attachment_values(message, lead or partner, media)
            for message, _account, lead, partner, media in entries if media]
        attachments = iter(self.env["ir.attachment"].create(attachment_values))
        # The records exist before the posts: the burst rule of crm.lead._notify_get_recipients
        # sees the earlier messages of the batch.
        wa_messages = self.create([self._inbound_values(message, account, lead, partner)
                                   for message, account, lead, partner, _media in entries])
        unread = {}
        for wa_message, (message, _account, lead, partner, media) in zip(wa_messages, entries, strict=True):
            attachment = next(attachments) if media else self.env["ir.attachment"]
            post = self._post_inbound(message, lead, partner, attachment)
            wa_message.write({"mail_message_id": post.id, **(
                {"attachment_ids": [(6, 0, attachment.ids)]} if attachment else {})})
            if lead:
                unread[lead] = unread.get(lead, 0) + 1
        for lead, count in unread.items():
            lead.whatsapp_unread_count += count
        return wa_messages

    @api.model
    def _inbound_values(self, message, account, lead, partner):
        """Values of the record of an inbound :class:`InboundMessage`."""
        known_types = dict(MESSAGE_TYPES)
        return {
            "wamid": message.wamid,
            "direction": "in",
            "account_id": account.id,
            "lead_id": lead.id,
            "partner_id": partner.id,
            "wa_id": message.wa_id,
            "message_type": message.message_type if message.message_type in known_types else "unsupported",
            "original_type": message.message_type if message.message_type not in known_types else False,
            "body": message.body or False,
            "state": "received",
            "message_date": message.timestamp,
            "context_wamid": message.context_wamid or False,
            "media_id": message.media.media_id if message.media else False,
            "error_code": message.errors[0][0] if message.errors else 0,
            "error_message": message.errors[0][1] if message.errors else False,
        }

    @api.model
    def _attachment_values(self, message, record, media):
        content, mime_type = media
        return {
            "name": self._attachment_name(message, mime_type),
            "raw": content,
            "mimetype": mime_type or False,
            "res_model": record._name,
            "res_id": record.id,
        }

    @api.model
    def _post_inbound(self, message, lead, partner, attachments):
        """Post one inbound message on ``lead`` for its salesperson, or on ``partner`` when there is no lead."""
        thread = lead or partner
        return thread.with_context(
            mail_create_nosubscribe=True, crm_whatsapp_inbound=True,
            # Salespeople notified by email get it through the mail queue: the cron does not wait on SMTP.
            mail_notify_force_send=False,
        ).message_post(
            body=self._chatter_body(message),
            author_id=partner.id,
            # A WhatsApp customer usually has no email: say so instead of computing an address.
            email_from=partner.email_formatted if partner.email else False,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
            partner_ids=lead.user_id.partner_id.ids,
            attachment_ids=attachments.ids,
        )

    def _attachment_name(self, message, mime_type):
        if message.media.filename:
            return message.media.filename
        extension = mimetypes.guess_extension((mime_type or "").split(";")[0].strip()) or ""
        return f"whatsapp-{message.message_type}-{message.media.media_id}{extension}"

    @api.model
    def _chatter_body(self, message):
        """HTML shown in the chatter, the customer's text escaped, labels translatable."""
        label = Markup('<span class="badge text-bg-success me-1">WhatsApp</span>')
        lines = []
        if message.referral:
            ref = message.referral
            lines.append(Markup("<i>%s</i>") % _("Came from an ad: %s", ref.headline or ref.source_id))
        kind = message.message_type
        if message.location:
            loc = message.location
            place = ", ".join(filter(None, (loc.name, loc.address))) or _("Shared location")
            lines.append(Markup('%s: <a href="%s" target="_blank">%s</a>') % (
                _("Location"), loc.map_url, place))
        elif message.contacts:
            for contact in message.contacts:
                details = ", ".join(filter(None, (contact.name, *contact.phones, *contact.emails)))
                lines.append(escape(_("Shared contact: %s", details)))
        elif kind == "reaction":
            lines.append(escape(_("Reacted %s to a message", message.reaction_emoji)
                                if message.reaction_emoji else _("Removed a reaction")))
        elif kind == "unsupported" or kind not in dict(MESSAGE_TYPES):
            detail = message.errors[0][1] if message.errors else kind
            lines.append(Markup("<i>%s</i>") % _("Unsupported message (%s)", detail))
        elif message.media and not message.body:
            lines.append(Markup("<i>%s</i>") % dict(MESSAGE_TYPES)[kind])
        if message.body:
            lines.append(escape(message.body).replace("\n", Markup("<br/>")))
        return label + Markup("<br/>").join(lines)

    def _notify_salesperson(self):
        """Real-time toast for each lead's salesperson, one per lead (sent on commit)."""
        for lead, messages in self.filtered("lead_id").grouped("lead_id").items():
            if not lead.user_id:
                continue
            sender = messages[0].partner_id.name or messages[0].wa_id
            text = (_("New WhatsApp message from %s", sender) if len(messages) == 1
                    else _("%(count)s new WhatsApp messages from %(sender)s", count=len(messages), sender=sender))
            lead._send_lead_toast(_("WhatsApp"), text)

    def _apply_status(self, status):
        """Move the message's state forward; a late or repeated status never goes back."""
        self.ensure_one()
        values = {}
        if status.conversation_id:
            values["conversation_id"] = status.conversation_id
        if status.pricing_category:
            values["pricing_category"] = status.pricing_category
        if status.billable is not None:
            values["billable"] = bool(status.billable)
        current = self.state
        if status.status == "failed":
            if current not in ("delivered", "read"):
                values.update(state="failed", error_code=status.error_code,
                              error_message=status.error_message or False, status_date=status.timestamp)
        elif status.status in STATE_RANK and (
                current == "failed" or STATE_RANK[status.status] > STATE_RANK.get(current, 0)):
            values.update(state=status.status, status_date=status.timestamp)
        if values:
            self.write(values)
        return self.state
