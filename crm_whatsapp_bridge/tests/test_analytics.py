import hashlib
import json
import time
from datetime import timedelta, timezone
from pathlib import Path
from unittest.mock import patch

from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, tagged

from odoo.addons.crm_whatsapp_bridge.models import crm_analytics_event
from odoo.addons.crm_whatsapp_bridge.tools.analytics import Ga4Client, event_id
from odoo.addons.crm_whatsapp_bridge.tools.graph_client import GraphClient

from .common import WABA_ID, MetaTestMixin, notification, text_message
from .fake_graph import FakeGraphServer, graph_error_body

SAMPLES = Path(__file__).resolve().parent / "samples"
MEASUREMENT_ID = "G-TEST12345"
API_SECRET = "ga4-api-secret-do-not-leak"
DATASET_ID = "880000000000001"
CAPI_TOKEN = "EAAC-capi-token-do-not-leak"
EVENTS_PATH = f"/{DATASET_ID}/events"
LEADGEN_ID = "1234567890123456"
CLICK_ID = "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-GABDLOPaOdRMv-_zfUQ2a"
CTWA_REFERRAL = {"source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120210000000000001", "source_type": "ad",
                 "headline": "Spring offer: 20% off", "body": "Chat with us on WhatsApp", "ctwa_clid": CLICK_ID}
REGION_REFUSAL = {"error": {
    "message": "Invalid parameter", "type": "OAuthException", "code": 100, "error_subcode": 2804019,
    "is_transient": False, "error_user_title": "Messaging Event Within Messaging Restrictive Region",
    "error_user_msg": "Messaging events from users in this region can't be used.", "fbtrace_id": "AbCd"}}
BAD_EVENT = {"error": {
    "message": "Invalid parameter", "type": "OAuthException", "code": 100, "error_subcode": 2804066,
    "is_transient": False, "error_user_title": "Messaging Event Invalid Event Type",
    "error_user_msg": "The event name is not supported for business messaging.", "fbtrace_id": "AbCd"}}


class WorkerKilled(BaseException):
    """The worker dies (SIGKILL, time limit) right after the API took the request."""


def accepted_then_killed(send):
    def call(client, *args):
        send(client, *args)
        raise WorkerKilled()
    return call


def sample(name):
    return json.loads((SAMPLES / f"{name}.json").read_text())


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


@tagged("post_install", "-at_install")
class TestAnalytics(MetaTestMixin, TransactionCase):
    """Funnel events: queued with the lead change, sent by the cron to local GA4 and Graph fakes."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_meta(graph_url=cls.start_fake_graph())
        cls.ga4 = FakeGraphServer().__enter__()
        cls.addClassCleanup(cls.ga4.__exit__, None, None, None)
        params = cls.env["ir.config_parameter"].sudo()
        for key, value in {"ga4_measurement_id": MEASUREMENT_ID, "ga4_api_secret": API_SECRET,
                           "ga4_url": cls.ga4.url, "meta_dataset_id": DATASET_ID,
                           "meta_capi_token": CAPI_TOKEN, "meta_test_event_code": "TEST123",
                           "analytics_debug": False}.items():
            params.set_param(f"crm_whatsapp_bridge.{key}", value)
        Stage = cls.env["crm.stage"]
        cls.stage_new = Stage.create({"name": "Fresh", "sequence": 0})
        cls.stage_qualified = Stage.create({"name": "Qualified", "sequence": 2, "ga4_event": "qualify_lead",
                                            "meta_messaging_event": "QualifiedLead"})
        cls.stage_working = Stage.create({"name": "Demo booked", "sequence": 3, "ga4_event": "working_lead",
                                          "meta_event_name": "Demo"})
        cls.stage_won = Stage.create({"name": "Signed", "sequence": 9, "is_won": True,
                                      "ga4_event": "close_convert_lead"})
        cls.source_whatsapp = cls.env.ref("crm_whatsapp_bridge.utm_source_whatsapp")
        cls.source_facebook = cls.env.ref("utm.utm_source_facebook")
        cls.Event = cls.env["crm.analytics.event"]

    def setUp(self):
        super().setUp()
        self.patch(self.env.cr, "commit", lambda: None)
        self.patch(crm_analytics_event, "HTTP_BACKOFF", 0.01)
        self.ga4.requests.clear()
        self.graph.requests.clear()
        self.ga4.respond("/mp/collect", (204, b"", "text/plain"))
        self.ga4.respond("/debug/mp/collect", (200, sample("ga4_debug_response_valid")))
        self.graph.respond(EVENTS_PATH, (200, sample("capi_events_ok")))

    # helpers

    def lead(self, **values):
        return self.env["crm.lead"].create({
            "name": "Jane's interest", "contact_name": "Jane Doe", "email_from": " Jane.Doe@Example.com ",
            "phone": "+962 79 123 4567", "source_id": self.source_whatsapp.id, "stage_id": self.stage_new.id,
            "expected_revenue": 1200, **values})

    def meta_lead(self, **values):
        return self.lead(source_id=self.source_facebook.id, meta_leadgen_id=LEADGEN_ID, **values)

    def events(self, lead=None, **domain):
        search = [("lead_id", "=", lead.id)] if lead else []
        return self.Event.search(search + [(key, "=", value) for key, value in domain.items()], order="id")

    def send(self):
        self.Event._cron_send_queued()

    def event_id(self, dedup_key):
        """The id a replay of the event carries too: derived from the database's secret and the transition."""
        return event_id(self.env["ir.config_parameter"].sudo().get_param("database.uuid"), dedup_key)

    def without_event_ids(self, bodies):
        """GA4 bodies as text without their event ids (hex) and timestamps (digits), to look for personal data."""
        text = json.dumps([{key: value for key, value in body.items() if key != "timestamp_micros"}
                           for body in bodies])
        for event in (event for body in bodies for event in body["events"]):
            self.assertRegex(event["params"]["crm_event_id"], r"^[0-9a-f]{32}$")
            text = text.replace(event["params"]["crm_event_id"], "")
        return text

    def ga4_bodies(self, path="/mp/collect"):
        return [request["json"] for request in self.ga4.received(path)]

    def set_debug(self, debug=True):
        self.env["ir.config_parameter"].sudo().set_param("crm_whatsapp_bridge.analytics_debug", debug)

    # queueing

    def test_whatsapp_conversation_sends_generate_lead_and_first_message_without_pii(self):
        self.store(notification([text_message("962791234567", "Hello, price please?")]))
        self.process_all()
        lead = self.env["crm.lead"].search([("partner_id.phone", "=", "+962791234567")])
        self.assertEqual(lead.source_id, self.source_whatsapp)
        self.store(notification([text_message("962791234567", "Still there?")]))
        self.process_all()
        self.assertEqual(self.events(lead).mapped("name"), ["generate_lead", "whatsapp_message_received"])
        self.send()
        [request] = self.ga4.received("/mp/collect")
        self.assertEqual(request["args"], {"measurement_id": MEASUREMENT_ID, "api_secret": API_SECRET})
        body = dict(request["json"])
        self.assertIsInstance(body.pop("timestamp_micros"), int)
        client_id = lead._analytics_client_id()
        params = {"currency": lead.company_currency.name, "lead_source": "whatsapp", "engagement_time_msec": 1}
        self.assertEqual(body, {
            "client_id": client_id,
            "non_personalized_ads": True,
            "user_properties": {"lead_source": {"value": "whatsapp"}},
            "events": [
                {"name": "generate_lead", "params": dict(
                    params, value=0.0, crm_event_id=self.event_id(f"ga4:{lead.id}:generate_lead:created"))},
                {"name": "whatsapp_message_received", "params": dict(params, value=0.0, crm_event_id=self.event_id(
                    f"ga4:{lead.id}:whatsapp_message_received:message{lead.whatsapp_message_ids.sorted('id')[0].id}"))},
            ],
        })
        self.assertRegex(client_id, r"^\d{1,10}\.\d{10}$")
        self.assertEqual(lead._analytics_client_id(), client_id, "the pseudonymous id is stable")
        raw = self.without_event_ids([request["json"]])
        for personal in ("962791234567", "+962", "Customer", lead.partner_id.name):
            self.assertNotIn(personal, raw)
        self.assertEqual(set(self.events(lead).mapped("state")), {"sent"})
        self.assertNotIn(API_SECRET, json.dumps(self.events(lead).mapped("payload")))

    def test_a_message_after_24_hours_of_silence_opens_a_new_conversation(self):
        sender = "962791234599"
        day_old = str(int(time.time()) - 25 * 3600)
        self.store(notification([text_message(sender, "Hi", timestamp=day_old)]))
        self.process_all()
        self.store(notification([text_message(sender, "Any news?")]))
        self.process_all()
        self.store(notification([text_message(sender, "Hello?")]))
        self.process_all()
        lead = self.env["crm.lead"].search([("partner_id.phone", "=", "+962791234599")])
        self.assertEqual(self.events(lead).mapped("name"),
                         ["generate_lead", "whatsapp_message_received", "whatsapp_message_received"])

    def test_no_personal_data_in_ga4_and_ga_client_id_is_used(self):
        lead = self.lead(ga_client_id="555123.1732450000", partner_name="Acme Jordan")
        lead.stage_id = self.stage_qualified
        self.send()
        bodies = self.ga4_bodies()
        self.assertEqual([body["client_id"] for body in bodies], ["555123.1732450000"])
        self.assertEqual([event["name"] for event in bodies[0]["events"]], ["generate_lead", "qualify_lead"])
        raw = self.without_event_ids(bodies).lower()
        # The phone in any form (the event's microsecond timestamp may contain "962" by chance).
        for personal in ("jane", "doe", "example.com", "+962", "96279", "962 79", "123 4567", "1234567", "acme"):
            self.assertNotIn(personal, raw)

    def test_one_transition_is_queued_and_sent_once(self):
        lead = self.lead()
        lead.stage_id = self.stage_qualified
        lead.write({"stage_id": self.stage_qualified.id})  # same stage again: no transition
        lead.stage_id = self.stage_new
        lead.stage_id = self.stage_qualified  # back again: the same transition, already reported
        self.assertEqual(self.events(lead).mapped("name"), ["generate_lead", "qualify_lead"])
        self.send()
        self.send()
        self.assertEqual(len(self.ga4.received("/mp/collect")), 1)
        self.assertEqual(len(self.ga4_bodies()[0]["events"]), 2)

    def test_won_sends_close_convert_lead_with_value_and_currency(self):
        lead = self.lead(expected_revenue=5000)
        self.send()
        lead.action_set_won()
        self.assertEqual(lead.stage_id, self.stage_won)
        self.send()
        event = self.ga4_bodies()[-1]["events"]
        self.assertEqual(event, [{"name": "close_convert_lead", "params": {
            "currency": lead.company_currency.name, "value": 5000.0, "lead_source": "whatsapp",
            "engagement_time_msec": 1,
            "crm_event_id": self.event_id(f"ga4:{lead.id}:close_convert_lead:stage{self.stage_won.id}")}}])

    def test_lost_sends_close_unconvert_lead_with_the_reason_once(self):
        lead = self.lead()
        reason = self.env["crm.lost.reason"].create({"name": "Too expensive"})
        lead.action_set_lost(lost_reason_id=reason.id)
        lead.action_unarchive()
        lead.action_archive()
        [lost] = self.events(lead, name="close_unconvert_lead")
        self.assertEqual(lost.payload["events"][0]["params"]["unconvert_lead_reason"], "Too expensive")

    def test_other_leads_and_unconfigured_destinations_queue_nothing(self):
        other = self.env["crm.lead"].create({"name": "Walk-in", "stage_id": self.stage_new.id})
        other.stage_id = self.stage_qualified
        self.assertFalse(self.events(other))
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("crm_whatsapp_bridge.ga4_api_secret", False)
        params.set_param("crm_whatsapp_bridge.meta_capi_token", False)
        lead = self.meta_lead()
        lead.stage_id = self.stage_qualified
        self.assertFalse(self.events(lead))

    def test_rollback_queues_and_triggers_nothing(self):
        lead = self.lead()
        events_before = self.Event.search_count([])
        cron = self.env.ref("crm_whatsapp_bridge.ir_cron_analytics_send")
        triggers = self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])
        with self.assertRaises(ValueError):
            with self.env.cr.savepoint():
                lead.stage_id = self.stage_qualified
                self.assertEqual(self.Event.search_count([]), events_before + 1)
                raise ValueError("the user's transaction fails")
        self.env.invalidate_all()
        self.assertEqual(self.Event.search_count([]), events_before)
        self.assertEqual(self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), triggers)

    def test_salesperson_stage_change_is_queued(self):
        lead = self.lead(user_id=self.salesperson.id)
        lead.with_user(self.salesperson).write({"stage_id": self.stage_qualified.id})
        self.assertEqual(self.events(lead, name="qualify_lead").state, "queued")

    def test_only_settings_admins_see_the_event_log(self):
        self.lead().stage_id = self.stage_qualified
        with self.assertRaises(AccessError):
            self.Event.with_user(self.salesperson).search([])
        self.assertTrue(self.Event.with_user(self.admin).search([]))

    def test_ga4_timestamp_is_the_event_time(self):
        lead = self.lead()
        event = self.events(lead)
        self.send()
        expected = int(event.event_time.replace(tzinfo=timezone.utc).timestamp() * 1_000_000)
        self.assertEqual(self.ga4_bodies()[0]["timestamp_micros"], expected)

    # Meta Conversions API

    def test_lead_ads_stage_change_goes_to_the_conversions_api_hashed(self):
        lead = self.meta_lead()
        lead.stage_id = self.stage_qualified
        lead.stage_id = self.stage_working
        self.send()
        [request] = self.graph.received(EVENTS_PATH)
        self.assertEqual(request["authorization"], f"Bearer {CAPI_TOKEN}")
        data = request["json"]["data"]
        self.assertNotIn("test_event_code", request["json"])
        user_data = {"lead_id": int(LEADGEN_ID), "em": [sha256("jane.doe@example.com")],
                     "ph": [sha256("962791234567")]}
        self.assertEqual([event.pop("event_time") > 0 for event in data], [True, True])
        self.assertEqual(data, [
            {"event_name": name, "action_source": "system_generated",
             "event_id": self.event_id(f"meta:{lead.id}:{name}:stage{stage.id}"),
             "custom_data": {"event_source": "crm", "lead_event_source": "Odoo"}, "user_data": user_data}
            for name, stage in (("Qualified", self.stage_qualified), ("Demo", self.stage_working))])
        meta_events = self.events(lead, destination="meta")
        self.assertEqual(set(meta_events.mapped("state")), {"sent"})
        self.assertIn("events_received", meta_events[0].response)

    def test_debug_mode_stores_validation_messages_and_sends_test_event_code(self):
        self.set_debug()
        self.ga4.respond("/debug/mp/collect", (200, sample("ga4_debug_response")))
        lead = self.meta_lead()
        lead.stage_id = self.stage_qualified
        self.send()
        self.assertFalse(self.ga4.received("/mp/collect"))
        self.assertEqual(len(self.ga4.received("/debug/mp/collect")), 1)
        for event in self.events(lead, destination="ga4"):
            self.assertEqual(event.validation_messages, sample("ga4_debug_response")["validationMessages"])
            self.assertTrue(event.has_validation_errors and event.debug)
            self.assertIn("NAME_INVALID", event.validation_text)
        [request] = self.graph.received(EVENTS_PATH)
        self.assertEqual(request["json"]["test_event_code"], "TEST123")

    # batching, retries, dead letters

    def queue(self, destination, count, batch_key, name="qualify_lead"):
        def payload(index):
            if destination == "meta":
                return {"event_name": "Qualified", "event_time": 1732450000, "user_data": {"lead_id": index}}
            return {"client_id": batch_key, "events": [{"name": name, "params": {"value": index}}]}
        return self.Event._enqueue([
            {"destination": destination, "name": name, "dedup_key": f"test:{destination}:{batch_key}:{index}",
             "batch_key": batch_key, "payload": payload(index)} for index in range(count)])

    def test_batches_25_events_per_ga4_client_and_1000_per_meta_request(self):
        self.queue("ga4", 60, "111.222")
        for client in ("333.444", "555.666"):
            self.queue("ga4", 1, client)
        self.queue("meta", 1001, DATASET_ID)
        self.send()
        sizes = sorted((body["client_id"], len(body["events"])) for body in self.ga4_bodies())
        self.assertEqual(sizes, [("111.222", 10), ("111.222", 25), ("111.222", 25), ("333.444", 1), ("555.666", 1)])
        self.assertEqual([len(r["json"]["data"]) for r in self.graph.received(EVENTS_PATH)], [1000, 1])
        self.assertEqual(self.Event.search_count([("state", "!=", "sent")]), 0)

    def test_5xx_is_retried_then_sent(self):
        self.ga4.respond("/mp/collect", (503, b"busy", "text/plain"), (204, b"", "text/plain"))
        self.graph.respond(EVENTS_PATH, (500, graph_error_body(2, "Service temporarily unavailable")),
                           (200, sample("capi_events_ok")))
        lead = self.meta_lead()
        lead.stage_id = self.stage_qualified
        self.send()
        self.assertEqual(len(self.ga4.received("/mp/collect")), 2)
        self.assertEqual(len(self.graph.received(EVENTS_PATH)), 2)
        self.assertEqual(set(self.events(lead).mapped("state")), {"sent"})

    def test_failures_back_off_then_go_dead_notify_admins_and_can_be_resent(self):
        self.ga4.respond("/mp/collect", (500, b"down", "text/plain"))
        [event_id] = self.queue("ga4", 1, "777.888")
        event = self.Event.browse(event_id)
        for attempt in range(1, crm_analytics_event.MAX_ATTEMPTS + 1):
            self.send()
            self.assertEqual(event.attempts, attempt)
            if attempt < crm_analytics_event.MAX_ATTEMPTS:
                self.assertEqual(event.state, "failed")
                self.assertGreater(event.next_attempt_at, fields.Datetime.now())
                self.send()  # not due yet: nothing is sent
                self.assertEqual(event.attempts, attempt)
                event.next_attempt_at = fields.Datetime.now() - timedelta(seconds=1)
        self.assertEqual(event.state, "dead")
        self.assertIn("500", event.error)
        self.assertEqual(len(self.ga4.received("/mp/collect")), 3 * crm_analytics_event.MAX_ATTEMPTS)
        self.assertIn(self.admin.partner_id, event.message_ids.partner_ids)
        self.ga4.respond("/mp/collect", (204, b"", "text/plain"))
        event.action_resend()
        self.assertEqual((event.state, event.attempts), ("queued", 0))
        self.send()
        self.assertEqual(event.state, "sent")

    def test_refused_request_goes_dead_at_once(self):
        self.graph.respond(EVENTS_PATH, (400, graph_error_body(100, "Invalid parameter")))
        lead = self.meta_lead()
        lead.stage_id = self.stage_qualified
        self.send()
        meta = self.events(lead, destination="meta")
        self.assertEqual((meta.state, meta.attempts), ("dead", 1))
        self.assertIn("Invalid parameter", meta.error)
        self.assertEqual(len(self.graph.received(EVENTS_PATH)), 1)

    # a crash after the API took the request

    def test_replay_after_a_crash_carries_the_same_event_ids(self):
        lead = self.meta_lead()
        lead.stage_id = self.stage_qualified
        ga4_send, capi_send = Ga4Client.send, GraphClient.send_events
        for killed in ("ga4", "meta"):
            with patch.object(Ga4Client, "send", accepted_then_killed(ga4_send) if killed == "ga4" else ga4_send), \
                    patch.object(GraphClient, "send_events", accepted_then_killed(capi_send)):
                try:
                    self.send()
                except WorkerKilled:
                    self.env.invalidate_all()  # what the dead worker wrote is lost with it
                else:
                    self.fail("the worker should have died")
        self.send()
        self.assertEqual(set(self.events(lead).mapped("state")), {"sent"})
        first, replay = (request["json"] for request in self.graph.received(EVENTS_PATH))
        self.assertEqual(first, replay, "Meta gets the same events with the same event_id: it keeps one")
        self.assertEqual([event["event_id"] for event in first["data"]],
                         [self.event_id(f"meta:{lead.id}:Qualified:stage{self.stage_qualified.id}")])
        first, replay = self.ga4_bodies()
        self.assertEqual(first, replay, "GA4 gets the same crm_event_id and timestamp again (see README)")

    # Click-to-WhatsApp ads: Conversions API for Business Messaging

    def ctwa_lead(self, sender="962791234501"):
        self.store(notification([text_message(sender, "I saw your ad", referral=CTWA_REFERRAL)]))
        self.process_all()
        return self.env["crm.lead"].search([("partner_id.phone", "=", f"+{sender}")])

    def test_ctwa_lead_events_go_out_with_crm_events_in_one_request(self):
        lead = self.ctwa_lead()
        self.assertEqual((lead.whatsapp_ctwa_clid, lead.whatsapp_account_id.waba_id), (CLICK_ID, WABA_ID))
        lead_ads = self.meta_lead()
        (lead | lead_ads).write({"stage_id": self.stage_qualified.id})
        lead.write({"expected_revenue": 142.5, "stage_id": self.stage_won.id})
        self.send()
        [request] = self.graph.received(EVENTS_PATH)
        self.assertEqual(request["authorization"], f"Bearer {CAPI_TOKEN}")
        data = request["json"]["data"]
        self.assertTrue(all(event.pop("event_time") > 0 for event in data))
        messaging = {"action_source": "business_messaging", "messaging_channel": "whatsapp",
                     "user_data": {"whatsapp_business_account_id": WABA_ID, "ctwa_clid": CLICK_ID}}
        self.assertEqual(data, [
            dict(messaging, event_name="LeadSubmitted",
                 event_id=self.event_id(f"messaging:{lead.id}:LeadSubmitted:ctwa")),
            dict(messaging, event_name="QualifiedLead",
                 event_id=self.event_id(f"messaging:{lead.id}:QualifiedLead:stage{self.stage_qualified.id}")),
            {"event_name": "Qualified", "action_source": "system_generated",
             "event_id": self.event_id(f"meta:{lead_ads.id}:Qualified:stage{self.stage_qualified.id}"),
             "custom_data": {"event_source": "crm", "lead_event_source": "Odoo"},
             "user_data": {"lead_id": int(LEADGEN_ID), "em": [sha256("jane.doe@example.com")],
                           "ph": [sha256("962791234567")]}},
            dict(messaging, event_name="Purchase",
                 event_id=self.event_id(f"messaging:{lead.id}:Purchase:stage{self.stage_won.id}"),
                 custom_data={"currency": lead.company_currency.name, "value": 142.5}),
        ])
        self.assertEqual(set(self.events(lead, destination="meta").mapped("state")), {"sent"})

    def test_an_old_click_is_skipped_with_the_reason(self):
        lead = self.ctwa_lead()
        self.send()
        self.graph.requests.clear()
        self.ga4.requests.clear()
        lead.whatsapp_ctwa_clicked_at = fields.Datetime.now() - timedelta(days=8)
        lead.stage_id = self.stage_qualified
        skipped = self.events(lead, destination="meta", name="QualifiedLead")
        self.assertEqual(skipped.state, "skipped")
        self.assertIn("7 days", skipped.error)
        self.assertEqual(self.events(lead, destination="ga4", name="qualify_lead").state, "queued",
                         "GA4 keeps its own 72-hour rule")
        # Queued inside the window, still unsent when it closes: skipped at send time.
        lead.whatsapp_ctwa_clicked_at = fields.Datetime.now() - timedelta(days=6, hours=23)
        lead.action_set_won()
        purchase = self.events(lead, destination="meta", name="Purchase")
        self.assertEqual(purchase.state, "queued")
        with freeze_time(fields.Datetime.now() + timedelta(hours=2)):
            self.send()
        self.assertEqual(purchase.state, "skipped")
        self.assertFalse(self.graph.received(EVENTS_PATH))
        [ga4] = self.ga4_bodies()
        self.assertEqual([event["name"] for event in ga4["events"]], ["qualify_lead", "close_convert_lead"])

    def test_one_bad_event_does_not_sink_the_batch(self):
        def meta(request):
            data = request.get_json()["data"]
            ids = {event["event_id"] for event in data}
            if "region" in ids:
                return 400, REGION_REFUSAL
            if "bad" in ids:
                return 400, BAD_EVENT
            return 200, {"events_received": len(data), "messages": [], "fbtrace_id": "x"}

        self.graph.handle(EVENTS_PATH, meta)
        names = [f"good{index}" for index in range(40)]
        names[8], names[29] = "region", "bad"  # a messaging event, a Lead Ads event

        def payload(index, name):  # Lead Ads (CRM) and Click-to-WhatsApp events share the requests
            if index % 2:
                return {"event_name": "Qualified", "event_time": 1, "event_id": name,
                        "action_source": "system_generated", "user_data": {"lead_id": index}}
            return {"event_name": "QualifiedLead", "event_time": 1, "event_id": name,
                    "action_source": "business_messaging", "messaging_channel": "whatsapp",
                    "user_data": {"whatsapp_business_account_id": WABA_ID, "ctwa_clid": name}}

        event_ids = self.Event._enqueue([
            {"destination": "meta", "name": "Qualified", "dedup_key": f"test:batch:{name}", "batch_key": DATASET_ID,
             "payload": payload(index, name)} for index, name in enumerate(names)])
        self.send()
        events = self.Event.browse(event_ids)
        by_id = {event.payload["event_id"]: event for event in events}
        self.assertEqual(by_id["region"].state, "refused")
        self.assertIn("Messaging Event Within Messaging Restrictive Region", by_id["region"].error)
        self.assertEqual(by_id["region"].attempts, 0, "a regional refusal is final, not an attempt to retry")
        self.assertEqual(by_id["bad"].state, "dead")
        self.assertIn("Invalid Event Type", by_id["bad"].error)
        self.assertEqual({event.state for name, event in by_id.items() if name.startswith("good")}, {"sent"})
        accepted = [event["event_id"] for request in self.graph.received(EVENTS_PATH)
                    for event in request["json"]["data"]
                    if not {"region", "bad"} & {e["event_id"] for e in request["json"]["data"]}]
        self.assertEqual(sorted(accepted), sorted(name for name in names if name.startswith("good")),
                         "each good event was accepted exactly once")
        self.assertLessEqual(len(self.graph.received(EVENTS_PATH)), 2 * 2 * 6 + 1)

    # report

    def test_won_revenue_by_ad_and_campaign_matches_the_leads(self):
        Lead = self.env["crm.lead"]
        campaigns = self.env["utm.campaign"].create([{"name": "Spring"}, {"name": "Summer"}])
        specs = [  # (whatsapp ad, lead ads ad, campaign, revenue, won)
            ("120001", False, campaigns[0], 1000, True), ("120001", False, campaigns[0], 500, False),
            ("120002", False, campaigns[1], 250, True), (False, "230001", campaigns[0], 4000, True),
            (False, "230001", campaigns[0], 300, True), (False, "230002", campaigns[1], 70, False),
        ]
        leads = Lead.browse()
        for index, (wa_ad, la_ad, campaign, revenue, won) in enumerate(specs):
            lead = Lead.create({
                "name": f"Ad lead {index}", "expected_revenue": revenue, "campaign_id": campaign.id,
                "whatsapp_ad_id": wa_ad, "whatsapp_ad_headline": wa_ad and f"Headline {wa_ad}",
                "meta_ad_id": la_ad, "meta_ad_name": la_ad and f"Ad {la_ad}",
                "meta_leadgen_id": la_ad and f"99{index}"})
            if won:
                lead.action_set_won()
            leads |= lead
        leads[1].action_set_lost()
        self.env.flush_all()
        Report = self.env["crm.ad.revenue.report"]
        domain = [("lead_id", "in", leads.ids)]
        by_ad = {ad: (count, won, revenue) for ad, count, won, revenue in Report._read_group(
            domain, ["ad_name"], ["lead_count:sum", "won_count:sum", "won_revenue:sum"])}
        expected = {}
        for lead in leads:
            ad = lead.whatsapp_ad_headline or lead.meta_ad_name
            is_won = lead.active and lead.stage_id.is_won
            count, won, revenue = expected.get(ad, (0, 0, 0.0))
            expected[ad] = (count + 1, won + is_won, revenue + (lead.expected_revenue if is_won else 0.0))
        self.assertEqual(by_ad, expected)
        self.assertEqual(by_ad["Ad 230001"], (2, 2, 4300.0))
        by_campaign = dict(Report._read_group(domain, ["campaign_id"], ["won_revenue:sum"]))
        self.assertEqual(by_campaign, {
            campaign: sum(lead.expected_revenue for lead in leads.with_context(active_test=False)
                          if lead.campaign_id == campaign and lead.active and lead.stage_id.is_won)
            for campaign in campaigns})
        by_channel = dict(Report._read_group(domain, ["channel"], ["won_revenue:sum"]))
        self.assertEqual(by_channel, {"whatsapp": 1250.0, "lead_ads": 4300.0})
