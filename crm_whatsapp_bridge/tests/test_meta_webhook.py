from datetime import datetime, timedelta

from odoo.tests import HttpCase, tagged

from .common import (
    FORM_ID,
    PAGE_ID,
    VERIFY_TOKEN,
    MetaTestMixin,
    WebhookClientMixin,
    encode,
    leadgen_notification,
    notification,
    sign,
    text_message,
)
from .fake_graph import lead_object

AN_HOUR_AGO = datetime.now().replace(microsecond=0) - timedelta(hours=1)


@tagged("post_install", "-at_install")
class TestMetaWebhook(WebhookClientMixin, MetaTestMixin, HttpCase):
    """The Lead Ads webhook (/crm/webhook/meta) through real HTTP requests to the running Odoo."""

    webhook_path = "/crm/webhook/meta"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_meta(graph_url=cls.start_fake_graph())

    def test_handshake_same_rule_as_whatsapp(self):
        ok = self._handshake(**{"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "8814"})
        self.assertEqual((ok.status_code, ok.text), (200, "8814"))
        refused = self._handshake(**{"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "8814"})
        self.assertEqual(refused.status_code, 403)

    def test_signed_leadgen_is_stored_per_leadgen_id_and_triggers_cron(self):
        triggers = self._triggers()
        response = self._post(encode(leadgen_notification("6000000000000001", "6000000000000002")))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"received": 2, "new": 2})
        events = self._inbox()
        self.assertEqual(sorted(events.mapped("external_id")), ["6000000000000001", "6000000000000002"])
        self.assertEqual(set(events.mapped("source")), {"meta"})
        self.assertEqual(set(events.mapped("event_type")), {"leadgen"})
        self.assertEqual(set(events.mapped("channel_ref")), {PAGE_ID})
        self.assertEqual(events[0].payload["form_id"], FORM_ID)
        self.assertEqual(self._triggers(), triggers + 1)
        # Nothing but the insert in the request: no Graph call, no lead.
        self.assertFalse(self.graph.requests)
        self.assertFalse(self.env["crm.lead"].search([("meta_page_id", "=", self.page.id)]))

    def test_redelivery_is_a_noop(self):
        body = encode(leadgen_notification("6000000000000003"))
        self.assertEqual(self._post(body).json(), {"received": 1, "new": 1})
        triggers = self._triggers()
        self.assertEqual(self._post(body).json(), {"received": 1, "new": 0})
        self.assertEqual(len(self._inbox()), 1)
        self.assertEqual(self._triggers(), triggers)

    def test_forged_or_unsigned_is_403_and_stores_nothing(self):
        body = encode(leadgen_notification("6000000000000004"))
        for signature in (None, "sha256=" + "0" * 64, sign(body, secret="another-secret")):
            self.assertEqual(self._post(body, signature=signature).status_code, 403)
        self.assertEqual(self._post(body.replace(b"6000000000000004", b"6000000000000005"),
                                    signature=sign(body)).status_code, 403)
        self.assertFalse(self._inbox())

    def test_wrong_object_is_400_a_bad_change_is_kept_as_malformed(self):
        for payload in ({"object": "page", "entry": {"id": PAGE_ID}},
                        notification([text_message("15550101234", "not for this route")])):
            response = self._post(encode(payload))
            self.assertEqual(response.status_code, 400, payload)
        self.assertEqual(self._post(b"{nope").status_code, 400)
        self.assertFalse(self._inbox())
        response = self._post(encode({"object": "page", "entry": [{"id": PAGE_ID, "changes": [
            {"field": "leadgen", "value": {"page_id": PAGE_ID}}]}]}))
        self.assertEqual(response.json(), {"received": 1, "new": 1})
        self.assertEqual((self._inbox().event_type, self._inbox().channel_ref), ("malformed", ""))

    def test_webhook_to_lead_end_to_end(self):
        self.graph.add_lead(lead_object("6000000000000006", FORM_ID, AN_HOUR_AGO,
                                        {"full_name": "Huda Nasser", "email": "huda@example.com",
                                         "phone_number": "+962 79 000 1122"}))
        self.assertEqual(self._post(encode(leadgen_notification("6000000000000006"))).status_code, 200)
        self.process_all()
        lead = self.env["crm.lead"].search([("meta_leadgen_id", "=", "6000000000000006")])
        self.assertEqual((lead.contact_name, lead.email_from, lead.phone),
                         ("Huda Nasser", "huda@example.com", "+962790001122"))
