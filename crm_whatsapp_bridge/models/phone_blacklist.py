from odoo import api, models

from .crm_whatsapp_consent import SYNC_CONTEXT


class PhoneBlacklist(models.Model):
    """Odoo's phone blacklist and the WhatsApp marketing consents follow each other."""

    _inherit = "phone.blacklist"

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        if not self.env.context.get(SYNC_CONTEXT):
            self.env["crm.whatsapp.consent"]._sync_from_blacklist(records.filtered("active").mapped("number"), True)
        return records

    def write(self, vals):
        result = super().write(vals)
        if "active" in vals and not self.env.context.get(SYNC_CONTEXT):
            self.env["crm.whatsapp.consent"]._sync_from_blacklist(self.mapped("number"), bool(vals["active"]))
        return result
