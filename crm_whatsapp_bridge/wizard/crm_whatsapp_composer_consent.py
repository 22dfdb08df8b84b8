import base64
import mimetypes

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools.mimetypes import guess_mimetype

from ..tools import outbound


class CrmWhatsappComposer(models.TransientModel):
    """Consent and template checks, and the header file / URL variable of a template."""

    _inherit = "crm.whatsapp.composer"

    consent_warning = fields.Char(compute="_compute_consent_warning")
    header_format = fields.Selection(related="template_id.header_format")
    url_button_index = fields.Integer(related="template_id.url_button_index")
    header_file = fields.Binary("Header File", attachment=False,
                                help="The image, video or document shown at the top of the template.")
    header_filename = fields.Char()
    button_variable = fields.Char("Button Link Ending",
                                  help="The end of the template button's link (its {{1}}), e.g. an order number.")

    @api.depends("partner_id", "account_id", "template_id")
    def _compute_consent_warning(self):
        Message = self.env["crm.whatsapp.message"]
        Consent = self.env["crm.whatsapp.consent"]
        for composer in self:
            warning = False
            if composer.partner_id and composer.account_id:
                warning = Message._whatsapp_send_refusal(composer.partner_id, composer.account_id,
                                                         composer.template_id)
                if not warning and not composer.template_id and Message._whatsapp_send_refusal(
                        composer.partner_id, composer.account_id, automatic=True):
                    warning = _("%s Marketing templates cannot be sent; utility templates and replies inside "
                                "the 24-hour window can.",
                                Consent._marketing_refusal(composer.partner_id, composer.account_id))
            composer.consent_warning = warning

    @api.depends("header_filename", "button_variable")
    def _compute_preview(self):
        super()._compute_preview()
        for composer in self.filtered("template_id"):
            template = composer.template_id
            lines = [composer.preview or ""]
            if template.header_format != "text":
                kind = dict(template._fields["header_format"]._description_selection(self.env))[template.header_format]
                lines.insert(0, f"[{kind}: {composer.header_filename or '…'}]")
            if template.url_button_index >= 0:
                lines.append("🔗 " + outbound.render(template.url_button_url, {"1": composer.button_variable or "…"}))
            composer.preview = "\n".join(lines)

    def _check_consent_and_template(self):
        """Refuse what Meta's rules or the customer's consent forbid, and ask for missing template inputs."""
        template = self.template_id
        refusal = self.env["crm.whatsapp.message"]._whatsapp_send_refusal(self.partner_id, self.account_id, template)
        if refusal:
            raise UserError(refusal)
        if template.header_format != "text":
            if not self.header_file:
                raise UserError(_("The template %s starts with a file: add the header file.", template.display_name))
            mimetype = self._header_mimetype(base64.b64decode(self.header_file))
            if template.header_format != "document" and outbound.media_kind(mimetype) != template.header_format:
                raise UserError(_("The header file must be of the template's kind (%(kind)s); this one is %(type)s.",
                                  kind=template.header_format, type=mimetype))
        if template.url_button_index >= 0 and not (self.button_variable or "").strip():
            raise UserError(_("The template's button link ends with a variable: fill in the button link ending."))

    def _header_mimetype(self, raw):
        """The header file's type from its content, else from its name (videos are not sniffed)."""
        mimetype = guess_mimetype(raw)
        if mimetype == "application/octet-stream" and self.header_filename:
            mimetype = mimetypes.guess_type(self.header_filename)[0] or mimetype
        return mimetype

    def _outbound_values(self, thread):
        messages = super()._outbound_values(thread)
        template = self.template_id
        if not template:
            return messages
        values = messages[0]
        if template.header_format != "text" and self.header_file:
            raw = base64.b64decode(self.header_file)
            attachment = self.env["ir.attachment"].create({
                "name": self.header_filename or f"header-{template.name}", "raw": raw,
                "mimetype": self._header_mimetype(raw), "res_model": thread._name, "res_id": thread.id})
            values["attachment_ids"] = [(6, 0, attachment.ids)]
        if template.url_button_index >= 0:
            values["template_url_value"] = (self.button_variable or "").strip()
        return messages
