from odoo import api, fields, models


class CrmInboxEvent(models.Model):
    _inherit = "crm.inbox.event"

    # Stored by the webhook before anyone knows whose it is; set once the event is routed.
    company_id = fields.Many2one("res.company", compute="_compute_company_id", store=True, index=True,
                                 help="The company of the WhatsApp number or page the event was routed to.")

    @api.depends("whatsapp_account_id.company_id", "meta_page_id.company_id")
    def _compute_company_id(self):
        for event in self:
            event.company_id = event.whatsapp_account_id.company_id or event.meta_page_id.company_id
