from odoo import api, fields, models

from ..tools.graph_client import DEFAULT_GRAPH_URL

WEBHOOK_PATH = "/crm/webhook/whatsapp"
META_WEBHOOK_PATH = "/crm/webhook/meta"


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    crm_whatsapp_meta_app_secret = fields.Char(
        "Meta App Secret", config_parameter="crm_whatsapp_bridge.meta_app_secret",
        groups="base.group_system",
        help="Meta app > App settings > Basic > App secret. Used to verify that webhooks come from Meta.")
    crm_whatsapp_meta_verify_token = fields.Char(
        "Webhook Verify Token", config_parameter="crm_whatsapp_bridge.meta_verify_token",
        groups="base.group_system",
        help="Paste this value as the Verify token when you set up the webhook in Meta's dashboard.")
    crm_whatsapp_graph_url = fields.Char(
        "Graph API URL", config_parameter="crm_whatsapp_bridge.graph_url", default=DEFAULT_GRAPH_URL,
        groups="base.group_system",
        help="Base URL of Meta's Graph API, with its version.")
    crm_whatsapp_webhook_url = fields.Char("WhatsApp Webhook URL", compute="_compute_crm_whatsapp_webhook_url")
    crm_meta_webhook_url = fields.Char("Lead Ads Webhook URL", compute="_compute_crm_whatsapp_webhook_url")
    crm_whatsapp_account_count = fields.Integer(compute="_compute_crm_whatsapp_account_count")

    @api.depends("company_id")
    def _compute_crm_whatsapp_webhook_url(self):
        base_url = self.env["ir.config_parameter"].sudo().get_param("web.base.url", "").rstrip("/")
        for settings in self:
            settings.crm_whatsapp_webhook_url = base_url + WEBHOOK_PATH
            settings.crm_meta_webhook_url = base_url + META_WEBHOOK_PATH

    @api.depends("company_id")
    def _compute_crm_whatsapp_account_count(self):
        count = self.env["crm.whatsapp.account"].search_count([])
        for settings in self:
            settings.crm_whatsapp_account_count = count

    def action_open_whatsapp_accounts(self):
        return self.env["ir.actions.act_window"]._for_xml_id("crm_whatsapp_bridge.crm_whatsapp_account_action")

    def action_open_meta_pages(self):
        return self.env["ir.actions.act_window"]._for_xml_id("crm_whatsapp_bridge.crm_meta_page_action")
