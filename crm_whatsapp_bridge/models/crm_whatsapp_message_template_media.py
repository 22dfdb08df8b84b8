from odoo import fields, models

from ..tools import outbound


class CrmWhatsappMessage(models.Model):
    _inherit = "crm.whatsapp.message"

    template_url_value = fields.Char("Button Link Ending", readonly=True)

    def _cloud_api_message(self, client):
        """Templates with a media header or a URL-button variable: upload the file, fill the button."""
        template = self.template_id
        if self.message_type != "template" or (template.header_format == "text" and template.url_button_index < 0):
            return super()._cloud_api_message(client)
        header_media = None
        if template.header_format != "text":
            attachment = self.attachment_ids[:1]
            media_id = client.upload_media(self.account_id.phone_number_id, attachment.raw, attachment.mimetype,
                                           attachment.name)
            header_media = (template.header_format, media_id, attachment.name)
        url_button = None
        if template.url_button_index >= 0:
            url_button = (template.url_button_index, self.template_url_value or "")
        return outbound.template_message(
            self.wa_id, template.name, template.language, self.template_values or {}, template.parameter_format,
            template.body, header_media=header_media, url_button=url_button)
