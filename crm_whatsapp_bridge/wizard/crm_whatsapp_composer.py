from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..tools import outbound

CAPTIONED_KINDS = ("image", "video", "document")


class CrmWhatsappComposer(models.TransientModel):
    """Write to a customer on WhatsApp from a lead or a contact."""

    _name = "crm.whatsapp.composer"
    _description = "Send a WhatsApp Message"

    lead_id = fields.Many2one("crm.lead", "Lead", domain="[('partner_id', '=', partner_id)]")
    partner_id = fields.Many2one("res.partner", "Customer", required=True)
    account_id = fields.Many2one(
        "crm.whatsapp.account", "From Number", required=True, compute="_compute_account_id",
        store=True, readonly=False, precompute=True)
    recipient = fields.Char("To", compute="_compute_recipient")
    window_end = fields.Datetime("Free Messages Until", compute="_compute_window")
    window_open = fields.Boolean(compute="_compute_window")
    template_id = fields.Many2one(
        "crm.whatsapp.template", "Template",
        domain="[('account_id', '=', account_id), ('can_send', '=', True)]")
    body = fields.Text("Message")
    preview = fields.Text(compute="_compute_preview")
    attachment_ids = fields.Many2many(
        "ir.attachment", "crm_whatsapp_composer_attachment_rel", "composer_id", "attachment_id", "Files")

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        model, res_id = self.env.context.get("active_model"), self.env.context.get("active_id")
        if model == "crm.lead" and res_id and not values.get("lead_id"):
            lead = self.env["crm.lead"].browse(res_id)
            values.update(lead_id=lead.id, partner_id=lead.partner_id.id)
        elif model == "res.partner" and res_id and not values.get("partner_id"):
            values["partner_id"] = res_id
            open_lead = self.env["crm.lead"].search([
                ("partner_id", "=", res_id), "|", ("stage_id", "=", False), ("stage_id.is_won", "=", False),
            ], order="id desc", limit=1)
            values["lead_id"] = open_lead.id
        return values

    @api.model
    def _open_action(self, model, res_id):
        return {
            "type": "ir.actions.act_window",
            "name": _("Send WhatsApp"),
            "res_model": self._name,
            "view_mode": "form",
            "target": "new",
            "context": {"active_model": model, "active_id": res_id},
        }

    @api.depends("lead_id", "partner_id")
    def _compute_account_id(self):
        Account = self.env["crm.whatsapp.account"]
        for composer in self:
            last_inbound = self.env["crm.whatsapp.message"].search(
                [("direction", "=", "in"), ("partner_id", "=", composer.partner_id.id)],
                order="message_date desc, id desc", limit=1) if composer.partner_id else False
            composer.account_id = (composer.lead_id.whatsapp_account_id
                                   or (last_inbound and last_inbound.account_id)
                                   or Account.search([("company_id", "in", self.env.companies.ids)], limit=1))

    @api.depends("partner_id")
    def _compute_recipient(self):
        for composer in self:
            partner = composer.partner_id
            composer.recipient = partner._whatsapp_recipient()

    @api.depends("account_id", "partner_id")
    def _compute_window(self):
        Message = self.env["crm.whatsapp.message"]
        now = fields.Datetime.now()
        for composer in self:
            end = (Message._service_window_end(composer.account_id, composer.partner_id)
                   if composer.account_id and composer.partner_id else False)
            composer.window_end = end
            composer.window_open = bool(end and end > now)

    @api.depends("template_id", "lead_id", "partner_id")
    def _compute_preview(self):
        for composer in self:
            template = composer.template_id
            composer.preview = (template._render(template._values_for(composer.lead_id, composer.partner_id))
                                if template else False)

    def _check_sendable(self):
        self.ensure_one()
        if not self.recipient:
            raise UserError(_("%s has no WhatsApp number or valid phone number.", self.partner_id.display_name))
        if self.template_id:
            self._check_consent_and_template()  # refuses a template that cannot be sent, with Meta's reason
            values = self.template_id._values_for(self.lead_id, self.partner_id)
            missing = [key for key, value in values.items() if not value]
            if missing:
                raise UserError(_("These template variables have no value: %s. Map them on the template "
                                  "or fill in the lead.", ", ".join(f"{{{{{key}}}}}" for key in missing)))
            return
        if not self.window_open:
            raise UserError(_("The customer has not written in the last 24 hours, so WhatsApp only accepts "
                              "an approved template. Choose a template."))
        if not (self.body or "").strip() and not self.attachment_ids:
            raise UserError(_("Write a message or attach a file."))

    def _outbound_values(self, thread):
        """The values of each message to record: one template, or a text and/or one per file."""
        if self.template_id:
            values = self.template_id._values_for(self.lead_id, self.partner_id)
            return [{"message_type": "template", "template_id": self.template_id.id,
                     "template_values": values, "body": self.template_id._render(values)}]
        body = (self.body or "").strip()
        messages = []
        for index, attachment in enumerate(self.attachment_ids):
            kind = outbound.media_kind(attachment.mimetype)
            # The text rides as the first file's caption when WhatsApp allows one.
            caption = body if index == 0 and kind in CAPTIONED_KINDS else False
            copy = self.env["ir.attachment"].create({
                "name": attachment.name, "raw": attachment.raw, "mimetype": attachment.mimetype,
                "res_model": thread._name, "res_id": thread.id})
            messages.append({"message_type": kind, "body": caption, "attachment_ids": [(6, 0, copy.ids)]})
        if body and not any(message["body"] for message in messages):
            messages.insert(0, {"message_type": "text", "body": body})
        return messages

    def action_send(self):
        """Queue the message(s); they go out after this transaction commits (see ``_queue_outbound``)."""
        self.ensure_one()
        thread = self.lead_id or self.partner_id
        thread.check_access("write")
        self.account_id.check_access("read")  # a number of a company the user works for
        self._check_sendable()
        Message = self.env["crm.whatsapp.message"]
        for values in self._outbound_values(thread):
            Message._queue_outbound(thread, self.account_id, self.partner_id, values)
        # Failures reach the author later, as a sticky toast with Meta's reason.
        return {"type": "ir.actions.client", "tag": "display_notification", "params": {
            "type": "success", "title": _("WhatsApp"),
            "message": _("Message to %s queued: it goes out in a moment.", self.partner_id.display_name),
            "next": {"type": "ir.actions.act_window_close"},
        }}
