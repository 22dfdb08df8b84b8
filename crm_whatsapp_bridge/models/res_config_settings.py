from odoo import api, fields, models

from ..tools.analytics import DEFAULT_GA4_URL
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
    # Funnel analytics: GA4 (or a server-side GTM container) and Meta's Conversions API.
    crm_analytics_ga4_measurement_id = fields.Char(
        "GA4 Measurement ID", config_parameter="crm_whatsapp_bridge.ga4_measurement_id",
        groups="base.group_system", help="The web stream's measurement ID, e.g. G-XXXXXXX.")
    crm_analytics_ga4_api_secret = fields.Char(
        "GA4 API Secret", config_parameter="crm_whatsapp_bridge.ga4_api_secret", groups="base.group_system",
        help="GA4 Admin > Data Streams > the stream > Measurement Protocol API secrets.")
    crm_analytics_ga4_url = fields.Char(
        "GA4 / Server-side GTM URL", config_parameter="crm_whatsapp_bridge.ga4_url", default=DEFAULT_GA4_URL,
        groups="base.group_system",
        help="Google's endpoint, or the base URL of your server-side Google Tag Manager container "
             "(it receives the same /mp/collect requests).")
    crm_analytics_debug = fields.Boolean(
        "Analytics Debug Mode", config_parameter="crm_whatsapp_bridge.analytics_debug", groups="base.group_system",
        help="GA4 events go to the validation server (they never reach reports) and its messages are stored "
             "on each event; Meta events carry the test event code.")
    crm_analytics_meta_dataset_id = fields.Char(
        "Meta Dataset ID", config_parameter="crm_whatsapp_bridge.meta_dataset_id", groups="base.group_system",
        help="The dataset (pixel) ID from Meta's Events Manager that receives the CRM events of Lead Ads leads.")
    crm_analytics_meta_capi_token = fields.Char(
        "Conversions API Token", config_parameter="crm_whatsapp_bridge.meta_capi_token",
        groups="base.group_system", help="Access token generated in Events Manager for the dataset.")
    crm_analytics_meta_test_event_code = fields.Char(
        "Test Event Code", config_parameter="crm_whatsapp_bridge.meta_test_event_code",
        groups="base.group_system",
        help="From Events Manager > Test events. Sent with Meta events while debug mode is on.")
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

    def action_open_analytics_events(self):
        return self.env["ir.actions.act_window"]._for_xml_id("crm_whatsapp_bridge.crm_analytics_event_action")

    def action_open_meta_pages(self):
        return self.env["ir.actions.act_window"]._for_xml_id("crm_whatsapp_bridge.crm_meta_page_action")
