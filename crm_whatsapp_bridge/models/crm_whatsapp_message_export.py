from odoo import models

from .crm_lead_api import install_commit_marker


class CrmWhatsappMessage(models.Model):
    _inherit = "crm.whatsapp.message"

    def _auto_init(self):
        result = super()._auto_init()
        install_commit_marker(self.env.cr, self._table)  # the BigQuery export walks messages in commit order
        return result
