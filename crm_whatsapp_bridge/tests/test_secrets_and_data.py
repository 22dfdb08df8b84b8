import json
from datetime import timedelta

from odoo import fields
from odoo.exceptions import UserError, ValidationError
from odoo.tests import TransactionCase, tagged

from odoo.addons.crm_whatsapp_bridge.hooks import uninstall_hook

from .common import WhatsappTestMixin, bus_payloads, notification, text_message

GA4_SECRET = "ga4-secret-MUST-NOT-LEAK-7f3a"
CUSTOMER = "966501110055"
SECRET_PARAMS = {
    "crm_whatsapp_bridge.meta_app_secret": "app-secret",
    "crm_whatsapp_bridge.meta_verify_token": "verify-token",
    "crm_whatsapp_bridge.bigquery_key": '{"type": "service_account"}',
    "crm_whatsapp_bridge.ga4_api_secret": GA4_SECRET,
    "crm_whatsapp_bridge.meta_capi_token": "capi-token",
}


@tagged("post_install", "-at_install")
class TestSecrets(WhatsappTestMixin, TransactionCase):
    """Base URLs are checked on save; secrets never reach error texts, logs or notifications."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_whatsapp()

    def test_base_urls_are_checked_when_saved(self):
        params = self.env["ir.config_parameter"].sudo()
        for key in ("graph_url", "ga4_url", "bigquery_url", "oauth_token_url"):
            for bad in ("www.google-analytics.com", "ftp://example.com", "https://", "http://example.com",
                        "https://user:pw@example.com", "https://example.com/?api_secret=x"):
                with self.subTest(key=key, url=bad), self.assertRaises(ValidationError) as caught:
                    params.set_param(f"crm_whatsapp_bridge.{key}", bad)
                self.assertNotIn(bad, str(caught.exception))
            for good in ("https://sgtm.example.com", "https://graph.facebook.com/v26.0", "http://127.0.0.1:8089"):
                params.set_param(f"crm_whatsapp_bridge.{key}", good)
                self.assertEqual(params.get_param(f"crm_whatsapp_bridge.{key}"), good)

    def test_settings_refuse_a_ga4_url_without_scheme(self):
        settings = self.env["res.config.settings"].create({"crm_analytics_ga4_url": "www.google-analytics.com"})
        with self.assertRaises(ValidationError):
            settings.execute()
        self.assertNotEqual(self.env["ir.config_parameter"].sudo().get_param("crm_whatsapp_bridge.ga4_url"),
                            "www.google-analytics.com")

    def test_ga4_secret_never_reaches_error_log_or_notification(self):
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("crm_whatsapp_bridge.ga4_measurement_id", "G-LEAKTEST")
        params.set_param("crm_whatsapp_bridge.ga4_api_secret", GA4_SECRET)
        # A value saved before URLs were checked (or written in SQL): requests refuses it with the full URL.
        self.env.flush_all()
        self.env.cr.execute("UPDATE ir_config_parameter SET value = 'www.google-analytics.com' WHERE key = %s",
                            ("crm_whatsapp_bridge.ga4_url",))
        self.env.registry.clear_cache()
        Event = self.env["crm.analytics.event"]
        [event_id] = Event._enqueue([{"destination": "ga4", "name": "qualify_lead", "dedup_key": "leak:1",
                                      "batch_key": "1.2", "payload": {"client_id": "1.2", "events": [
                                          {"name": "qualify_lead", "params": {"value": 1}}]}}])
        self.patch(self.env.cr, "commit", lambda: None)
        with self.assertLogs("odoo.addons.crm_whatsapp_bridge", level="INFO") as logs:
            Event._cron_send_queued()
        event = Event.browse(event_id)
        self.assertEqual(event.state, "dead")
        self.assertIn("MissingSchema", event.error)
        texts = [event.error, *logs.output, *(str(body) for body in event.message_ids.mapped("body")),
                 json.dumps(bus_payloads(self.env, self.admin, "simple_notification"))]
        self.assertIn(self.admin.partner_id, event.message_ids.partner_ids, "the admins are told")
        for text in texts:
            self.assertNotIn(GA4_SECRET, text)


@tagged("post_install", "-at_install")
class TestInstalledData(WhatsappTestMixin, TransactionCase):
    """UTM records the code needs are protected; uninstalling removes the addon's secrets only."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_whatsapp()

    def test_required_utm_sources_and_mediums_cannot_be_deleted(self):
        for xmlid in ("crm_whatsapp_bridge.utm_source_whatsapp", "crm_whatsapp_bridge.utm_source_instagram",
                      "utm.utm_source_facebook", "crm_whatsapp_bridge.utm_medium_whatsapp_ad",
                      "crm_whatsapp_bridge.utm_medium_whatsapp_post", "crm_whatsapp_bridge.utm_medium_lead_ad",
                      "crm_whatsapp_bridge.utm_medium_lead_form_organic"):
            with self.subTest(xmlid=xmlid), self.assertRaises(UserError):
                self.env.ref(xmlid).unlink()
        self.env["utm.source"].create({"name": "Flyer"}).unlink()
        self.env["utm.medium"].create({"name": "Billboard"}).unlink()
        # Still there: leads from WhatsApp keep being created.
        self.store(notification([text_message(CUSTOMER, "hello")]))
        self.process_all()
        lead = self.env["crm.lead"].search([("partner_id.whatsapp_number", "=", f"+{CUSTOMER}")])
        self.assertEqual(lead.source_id, self.env.ref("crm_whatsapp_bridge.utm_source_whatsapp"))

    def test_uninstall_removes_secrets_and_keeps_crm_data(self):
        params = self.env["ir.config_parameter"].sudo()
        for key, value in SECRET_PARAMS.items():
            params.set_param(key, value)
        params.set_param("crm.pls_fields", "phone_state,email_state")
        self.store(notification([text_message(CUSTOMER, "hello")]))
        self.process_all()
        leads_before = self.env["crm.lead"].search_count([])
        partners_before = self.env["res.partner"].search_count([])
        uninstall_hook(self.env)
        self.assertFalse(params.search([("key", "=like", "crm_whatsapp_bridge.%")]))
        self.assertEqual(params.get_param("crm.pls_fields"), "phone_state,email_state")
        self.assertEqual(self.env["crm.lead"].search_count([]), leads_before)
        self.assertEqual(self.env["res.partner"].search_count([]), partners_before)


@tagged("post_install", "-at_install")
class TestRetentionAndErasure(WhatsappTestMixin, TransactionCase):
    """Old payloads are purged by the cron; deleting a contact erases their WhatsApp data."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_whatsapp()

    def _inbox_event(self, sender, state, processed_days_ago):
        self.store(notification([text_message(sender, "old")]))
        event = self.env["crm.inbox.event"].search([("sender", "=", sender)], order="id desc", limit=1)
        event.write({"state": state,
                     "processed_at": fields.Datetime.now() - timedelta(days=processed_days_ago)})
        return event

    def _analytics_event(self, key, state, sent_days_ago):
        Event = self.env["crm.analytics.event"]
        [event_id] = Event._enqueue([{"destination": "ga4", "name": "qualify_lead", "dedup_key": key,
                                      "batch_key": "1.2", "payload": {"client_id": "1.2"}}])
        event = Event.browse(event_id)
        event.write({"state": state, "sent_at": fields.Datetime.now() - timedelta(days=sent_days_ago),
                     "response": "{}"})
        return event

    def test_cron_purges_processed_payloads_after_the_retention_period(self):
        old_done = self._inbox_event("966501110001", "done", 31)
        recent_done = self._inbox_event("966501110002", "done", 10)
        old_dead = self._inbox_event("966501110003", "dead", 90)
        old_sent = self._analytics_event("ret:1", "sent", 31)
        recent_sent = self._analytics_event("ret:2", "sent", 10)
        old_dead_event = self._analytics_event("ret:3", "dead", 90)
        self.env.ref("crm_whatsapp_bridge.ir_cron_purge_payloads").method_direct_trigger()
        self.assertFalse(old_done.exists())
        self.assertTrue(recent_done.exists() and old_dead.exists())
        self.assertEqual(old_dead.payload["message"]["text"]["body"], "old")
        self.assertTrue(old_sent.exists(), "the row stays: it keeps the transition from being sent twice")
        self.assertEqual((old_sent.payload, old_sent.response), (False, False))
        self.assertEqual(recent_sent.payload, {"client_id": "1.2"})
        self.assertEqual(old_dead_event.payload, {"client_id": "1.2"})
        # A shorter period, set in Settings, purges the more recent ones too.
        settings = self.env["res.config.settings"].create({"crm_whatsapp_retention_days": 7})
        settings.execute()
        self.env.ref("crm_whatsapp_bridge.ir_cron_purge_payloads").method_direct_trigger()
        self.assertFalse(recent_done.exists())
        self.assertFalse(recent_sent.payload)
        self.assertTrue(old_dead.exists())
        with self.assertRaises(ValidationError):
            self.env["res.config.settings"].create({"crm_whatsapp_retention_days": 0}).execute()

    def test_deleting_a_contact_erases_their_payloads_and_message_texts(self):
        self.store(notification([text_message(CUSTOMER, "My address is 12 Olaya St")]))
        other = "966501110066"
        self.store(notification([text_message(other, "Someone else")]))
        self.process_all()
        message = self.env["crm.whatsapp.message"].search([("wa_id", "=", CUSTOMER)])
        lead, partner = message.lead_id, message.partner_id
        self.assertIn("Olaya", str(message.mail_message_id.body))
        partner.unlink()
        self.assertFalse(self.env["crm.inbox.event"].search([("sender", "=", CUSTOMER)]))
        self.assertTrue(self.env["crm.inbox.event"].search([("sender", "=", other)]))
        self.assertTrue(message.exists())
        self.assertFalse(message.body)
        self.assertNotIn("Olaya", str(message.mail_message_id.body))
        self.assertTrue(lead.exists(), "the lead is CRM data and stays")
        self.assertEqual(self.env["crm.whatsapp.message"].search([("wa_id", "=", other)]).body, "Someone else")
