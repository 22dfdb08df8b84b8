from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..tools.analytics import DEFAULT_GA4_URL
from ..tools.bigquery import BigQueryError, parse_service_account_key
from ..tools.graph_client import DEFAULT_GRAPH_URL
from .crm_retention import DEFAULT_RETENTION_DAYS, RETENTION_PARAM

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
    crm_whatsapp_retention_days = fields.Integer(
        "Keep Payloads (Days)", config_parameter=RETENTION_PARAM, default=DEFAULT_RETENTION_DAYS,
        groups="base.group_system",
        help="Processed webhook payloads are deleted, and sent analytics payloads emptied, after this many days.")
    crm_whatsapp_webhook_url = fields.Char("WhatsApp Webhook URL", compute="_compute_crm_whatsapp_webhook_url")
    crm_meta_webhook_url = fields.Char("Lead Ads Webhook URL", compute="_compute_crm_whatsapp_webhook_url")
    crm_whatsapp_account_count = fields.Integer(compute="_compute_crm_whatsapp_account_count")
    crm_bigquery_project = fields.Char(
        "BigQuery Project ID", config_parameter="crm_whatsapp_bridge.bigquery_project", groups="base.group_system")
    crm_bigquery_dataset = fields.Char(
        "BigQuery Dataset", config_parameter="crm_whatsapp_bridge.bigquery_dataset", default="crm_export",
        groups="base.group_system")
    crm_bigquery_location = fields.Char(
        "BigQuery Location", config_parameter="crm_whatsapp_bridge.bigquery_location", default="EU",
        groups="base.group_system", help="Where the dataset is created, e.g. EU, US or europe-west1.")
    crm_bigquery_key = fields.Char(
        "Service-Account Key", config_parameter="crm_whatsapp_bridge.bigquery_key", groups="base.group_system",
        help="The JSON key file of a Google service account with the BigQuery Data Editor and Job User roles.")
    crm_bigquery_interval = fields.Integer(
        "Export Every (Hours)", default=1, groups="base.group_system",
        compute="_compute_crm_bigquery_interval", inverse="_inverse_crm_bigquery_interval")
    crm_bigquery_export_text = fields.Boolean(
        "Export Message Text", config_parameter="crm_whatsapp_bridge.bigquery_export_text",
        groups="base.group_system",
        help="Also export the text of WhatsApp messages. Off by default: messages can hold personal data.")

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

    def _bigquery_cron(self):
        return self.env.ref("crm_whatsapp_bridge.ir_cron_bigquery_export", raise_if_not_found=False)

    def _compute_crm_bigquery_interval(self):
        cron = self._bigquery_cron()
        hours = cron.interval_number * (24 if cron.interval_type == "days" else 1) if cron else 1
        for settings in self:
            settings.crm_bigquery_interval = hours

    def _inverse_crm_bigquery_interval(self):
        cron = self._bigquery_cron()
        for settings in self:
            if settings.crm_bigquery_interval < 1:
                raise UserError(_("The BigQuery export interval must be at least one hour."))
            if cron and (cron.interval_number, cron.interval_type) != (settings.crm_bigquery_interval, "hours"):
                cron.sudo().write({"interval_number": settings.crm_bigquery_interval, "interval_type": "hours"})

    @api.constrains("crm_whatsapp_retention_days")
    def _check_crm_whatsapp_retention_days(self):
        if any(settings.crm_whatsapp_retention_days < 1 for settings in self):
            raise ValidationError(_("Payloads must be kept at least one day."))

    @api.constrains("crm_bigquery_key")
    def _check_crm_bigquery_key(self):
        for settings in self:
            if settings.crm_bigquery_key:
                try:
                    parse_service_account_key(settings.crm_bigquery_key)
                except ValueError as exc:
                    raise UserError(str(exc)) from None

    def action_bigquery_test_connection(self):
        """Authenticate, create the dataset and tables when missing, and say what was found."""
        self.execute()
        Run = self.env["crm.bigquery.export.run"]
        try:
            config = Run._config()
            client = Run._client(config)
            dataset_created, created = Run._prepare_dataset(client, config)
        except (BigQueryError, UserError) as exc:
            return self._bigquery_notification("danger", str(exc))
        found = (_("Dataset %s created.", config["dataset"]) if dataset_created
                 else _("Dataset %s found.", config["dataset"]))
        made = _("Created: %s.", ", ".join(created)) if created else _("All tables and the view exist.")
        return self._bigquery_notification("success", f"{found} {made}")

    def _bigquery_notification(self, kind, message):
        return {"type": "ir.actions.client", "tag": "display_notification",
                "params": {"type": kind, "title": _("BigQuery"), "message": message, "sticky": kind == "danger"}}
