"""Bad input gets a 4xx or is kept as a dead inbox event, never a 500 (issue 12).

Every request is real HTTP to the running Odoo, signed like Meta's where it is a webhook.
"""

import json
from datetime import date, timedelta

from odoo.tests import HttpCase, tagged

from .common import (
    PAGE_ID,
    PHONE_NUMBER_ID,
    MetaTestMixin,
    WebhookClientMixin,
    api_keys,
    encode,
    leadgen_notification,
    notification,
    read_own_transaction_as_committed,
    text_message,
)

WHATSAPP = "/crm/webhook/whatsapp"
META = "/crm/webhook/meta"
CUSTOMER = "15550107001"


def splice(payload, **raw):
    """``payload`` encoded, with each string ``"@name@"`` replaced by the raw JSON text ``raw[name]``.

    This writes what ``json.dumps`` never would: NaN, 1e400, a lone surrogate escape, ``\\u0000``.
    """
    body = json.dumps(payload)
    for name, text in raw.items():
        body = body.replace(f'"@{name}@"', text)
    return body.encode()


def deep(levels):
    return "[" * levels + "]" * levels


@tagged("post_install", "-at_install")
class TestBadWebhookInput(WebhookClientMixin, MetaTestMixin, HttpCase):
    """Signed webhooks of every wrong shape: 200 with the valid events and one dead event per bad part,
    or 400 when the body is no notification at all; never a 500."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_meta()

    def post(self, path, body):
        self.webhook_path = path
        response = self._post(body)
        self.assertLess(response.status_code, 500, response.text)
        self.assertEqual(response.headers["Content-Type"].split(";")[0], "application/json")
        return response

    def events(self, event_type=None):
        domain = [("event_type", "=", event_type)] if event_type else []
        return self.env["crm.inbox.event"].search(domain, order="id")

    def assertOneMalformed(self, response, reason, received=1):
        """The body was taken (200) and one malformed event holds the bad part, readable as JSON."""
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.json()["received"], received)
        event = self.events("malformed")
        self.assertEqual(len(event), 1)
        self.assertEqual(event.state, "pending")
        self.assertIn(reason, event.payload["error"])
        self.assertTrue(event.external_id.startswith("malformed "))
        json.loads(event.payload_text)
        return event

    # ------------------------------------------------------------- wrong JSON types

    def test_metadata_of_the_wrong_type(self):
        for metadata in ([], "109876543210001", None, {"phone_number_id": {"id": "1"}}):
            with self.subTest(metadata=metadata):
                payload = notification([text_message(CUSTOMER, "hi")])
                payload["entry"][0]["changes"][0]["value"]["metadata"] = metadata
                event = self.assertOneMalformed(self.post(WHATSAPP, encode(payload)), "metadata.phone_number_id")
                self.assertFalse(event.channel_ref)
                self.assertEqual(event.payload["received"]["messages"][0]["text"]["body"], "hi")
                event.unlink()

    def test_messages_of_the_wrong_type(self):
        for messages in ({"id": "wamid.X"}, "hello", 42):
            with self.subTest(messages=messages):
                payload = notification(statuses=[{"id": "wamid.OUT9", "status": "read", "timestamp": "1",
                                                  "recipient_id": CUSTOMER}])
                payload["entry"][0]["changes"][0]["value"]["messages"] = messages
                event = self.assertOneMalformed(self.post(WHATSAPP, encode(payload)), "value.messages must be a list",
                                                received=2)
                self.assertEqual(event.channel_ref, PHONE_NUMBER_ID)
                self.assertEqual(self.events("status").external_id, "wamid.OUT9:read", "the status is kept")
                self.events().unlink()

    def test_message_id_that_is_an_object(self):
        message = text_message(CUSTOMER, "hi", id={"wamid": "wamid.NESTED"})
        event = self.assertOneMalformed(self.post(WHATSAPP, encode(notification([message]))), "whose id and from")
        self.assertEqual(event.payload["received"]["message"]["id"], {"wamid": "wamid.NESTED"})

    def test_contact_profile_of_the_wrong_type_only_costs_the_name(self):
        for profile in ("Customer", ["Customer"], {"name": {"first": "C"}}):
            with self.subTest(profile=profile):
                message = text_message(CUSTOMER, "hi")
                payload = notification([message])
                payload["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"] = profile
                response = self.post(WHATSAPP, encode(payload))
                self.assertEqual(response.json(), {"received": 1, "new": 1})
                event = self.events()
                self.assertEqual((event.external_id, event.event_type), (message["id"], "message"))
                self.assertEqual(event.payload["profile_name"], "")
                event.unlink()

    # -------------------------------------------------- JSON Python takes, PostgreSQL refuses

    def test_text_and_numbers_jsonb_refuses(self):
        cases = {  # label: (the raw JSON of the message's text body, the reason, what the admin sees)
            "NUL in a string": ('"a\\u0000b"', "contains a NUL character", "a\\u0000b"),
            "NUL in a key": ('{"a\\u0000": 1}', "has a key that contains a NUL character", {"a\\u0000": 1}),
            "lone high surrogate": ('"\\ud83d"', "lone UTF-16 surrogate", "\\ud83d"),
            "lone low surrogate": ('"x\\ude00"', "lone UTF-16 surrogate", "x\\ude00"),
            "NaN": ("NaN", "number out of range (NaN)", "NaN"),
            "Infinity": ("-Infinity", "number out of range (-Infinity)", "-Infinity"),
            "1e400": ("1e400", "number out of range (1e400)", "1e400"),
        }
        for label, (raw, reason, shown) in cases.items():
            with self.subTest(label):
                message = text_message(CUSTOMER, "@v@")
                event = self.assertOneMalformed(self.post(WHATSAPP, splice(notification([message]), v=raw)), reason)
                self.assertEqual((event.channel_ref, event.sender), (PHONE_NUMBER_ID, CUSTOMER))
                self.assertIn(message["id"], event.payload["error"])
                self.assertEqual(event.payload["received"]["message"]["text"]["body"], shown,
                                 "the admin sees the text as it was sent")
                event.unlink()

    def test_wamid_of_20000_characters(self):
        message = text_message(CUSTOMER, "long id", id="wamid." + "A" * 20000)
        event = self.assertOneMalformed(self.post(WHATSAPP, encode(notification([message]))), "whose id and from")
        self.assertEqual(len(event.payload["received"]["message"]["id"]), 20006, "kept whole in the payload")
        self.assertLess(len(event.external_id), 80)

    def test_nesting(self):
        deep_body = splice(notification([text_message(CUSTOMER, "@v@")]), v=deep(1000))
        response = self.post(WHATSAPP, deep_body)
        self.assertEqual((response.status_code, response.json()), (400, {"error": "malformed notification"}))
        self.assertEqual(self.post(META, deep(1000).encode()).status_code, 400)
        self.assertFalse(self.events())
        # Deep, but within what Python parses: the message is kept as a malformed event.
        self.assertOneMalformed(self.post(WHATSAPP, splice(notification([text_message(CUSTOMER, "@v@")]),
                                                           v=deep(60))), "nested deeper than 32 levels")

    # ------------------------------------------------------------ neighbours

    def test_one_bad_message_does_not_sink_its_neighbours(self):
        good = [text_message(CUSTOMER, "first"), text_message("15550107002", "second"),
                text_message("15550107003", "third")]
        bad = text_message(CUSTOMER, "@v@")
        body = splice(notification([good[0], bad, good[1], good[2]]), v='"null \\u0000 inside"')
        response = self.post(WHATSAPP, body)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"received": 4, "new": 4})
        messages = self.events("message")
        self.assertEqual(messages.mapped("external_id"), [m["id"] for m in good])
        dead = self.events("malformed")
        self.assertEqual(len(dead), 1)

        # A redelivery stores nothing twice, the malformed part included.
        self.assertEqual(self.post(WHATSAPP, body).json(), {"received": 4, "new": 0})

        self.env["crm.inbox.event"]._process_chunk()
        self.assertEqual(set(messages.mapped("state")), {"done"})
        self.assertEqual(len(messages.lead_id), 3)
        self.assertEqual(dead.state, "dead")
        self.assertIn("Malformed webhook content", dead.last_error)
        self.assertIn("contains a NUL character", dead.last_error)
        self.assertEqual(dead.attempts, 1)
        # The admins see it where the WhatsApp Inbox menu opens (dead events) and were told.
        action = self.env["ir.actions.act_window"]._for_xml_id("crm_whatsapp_bridge.crm_inbox_event_action")
        self.assertIn("search_default_dead", action["context"])
        self.assertEqual(self.env["crm.inbox.event"].with_user(self.admin).search([("state", "=", "dead")]), dead)
        self.assertIn(self.admin.partner_id, dead.message_ids.partner_ids)

        # Requeued, it goes dead again with the same reason rather than being taken for an event.
        dead.with_user(self.admin).action_requeue()
        self.env["crm.inbox.event"]._process_chunk()
        self.assertEqual(dead.state, "dead")
        self.assertIn("contains a NUL character", dead.last_error)

    def test_a_malformed_copy_never_takes_the_key_of_the_real_event(self):
        message = text_message(CUSTOMER, "@v@")
        self.post(WHATSAPP, splice(notification([message]), v='"\\ud800"'))
        fixed = dict(message, text={"body": "fixed"})
        response = self.post(WHATSAPP, encode(notification([fixed])))
        self.assertEqual(response.json(), {"received": 1, "new": 1}, "the real event is still new")
        self.assertEqual(self.events("message").external_id, message["id"])
        self.assertEqual(len(self.events("malformed")), 1)

    # ------------------------------------------------------------ Lead Ads

    def test_lead_ads_bad_parts(self):
        payload = leadgen_notification("6100000000000001", "@id@", "6100000000000003")
        payload["entry"].append("not an entry")
        payload["entry"][0]["changes"].append({"field": "leadgen", "value": {
            "leadgen_id": "6100000000000004", "page_id": PAGE_ID, "form_id": "@form@"}})
        body = splice(payload, id='{"id": 1}', form='"\\u0000"')
        response = self.post(META, body)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.json(), {"received": 5, "new": 5})
        self.assertEqual(self.events("leadgen").mapped("external_id"), ["6100000000000001", "6100000000000003"])
        errors = sorted(event.payload["error"] for event in self.events("malformed"))
        self.assertEqual(len(errors), 3)
        self.assertIn("numeric leadgen_id and page_id", errors[0])
        self.assertIn("an entry must be an object", errors[1])
        self.assertIn("form_id contains a NUL character", errors[2])


@tagged("post_install", "-at_install")
class TestBadApiInput(MetaTestMixin, HttpCase):
    """API parameters of every wrong shape: a named 400 (or 404) JSON error, never a 500."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_meta()
        cls.key = api_keys(cls.env, cls.admin)[cls.admin]
        cls.odd_stage = cls.env["crm.stage"].create({"name": "API 100%_done\\", "sequence": 95})
        cls.lead = cls.env["crm.lead"].create({"name": "Bad input lead 50%_off", "stage_id": cls.odd_stage.id,
                                               "team_id": cls.team.id})

    def setUp(self):
        super().setUp()
        read_own_transaction_as_committed(self)

    def call(self, method, path, params=None, body=None):
        response = self.opener.request(method, self.base_url() + path, params=params, data=body, timeout=30,
                                       headers={"Authorization": f"Bearer {self.key}",
                                                "Content-Type": "application/json"})
        self.assertLess(response.status_code, 500, response.text)
        self.assertEqual(response.headers["Content-Type"].split(";")[0], "application/json", response.text)
        return response

    def assertError(self, response, status, code, name=None):
        self.assertEqual(response.status_code, status, response.text)
        error = response.json()["error"]
        self.assertEqual(error["code"], code)
        if name:
            self.assertTrue(error["message"].startswith(f"{name}:"), error["message"])

    def test_leads_parameters(self):
        cases = [
            ("team_id", "²", "team_id"), ("user_id", "١٢", "user_id"), ("team_id", "9" * 5000, "team_id"),
            ("team_id", "2147483648", "team_id"), ("user_id", "-1", "user_id"), ("limit", "²", "limit"),
            ("limit", "9" * 5000, "limit"), ("stage", "²", "stage"), ("stage", "9" * 5000, "stage"),
            ("stage", "\\", "stage"), ("stage", "%", "stage"), ("source", "\\", "source"), ("source", "_", "source"),
            ("created_after", "0001-01-01T00:00:00+01:00", "created_after"),
            ("updated_after", "9999-12-31T23:59:59-01:00", "updated_after"),
            ("type", "\\", "type"), ("q", "a\x00", "q"),
        ]
        for name, value, named in cases:
            with self.subTest(parameter=name, value=value[:20]):
                self.assertError(self.call("GET", "/crm/leads", {name: value}), 400, "invalid_parameter", named)

    def test_like_patterns_match_literally(self):
        def names(**params):
            response = self.call("GET", "/crm/leads", dict(params, team_id=self.team.id))
            self.assertEqual(response.status_code, 200, response.text)
            return [lead["name"] for lead in response.json()["data"]]

        self.assertEqual(names(stage="api 100%_DONE\\"), ["Bad input lead 50%_off"])
        self.assertEqual(names(q="50%_off"), ["Bad input lead 50%_off"])
        self.assertEqual(names(q="\\"), [])
        self.assertEqual(names(q="%"), ["Bad input lead 50%_off"])
        self.assertEqual(names(q="5_%"), [])

    def test_stats_parameters(self):
        last_month = date.today() - timedelta(days=31)
        base = {"date_from": str(last_month), "date_to": str(last_month + timedelta(days=31))}
        for name, value in (("date_from", "0001-01-01T00:00:00+01:00"), ("date_to", "9999-12-31T23:59:59-01:00"),
                            ("team_id", "²"), ("user_id", "9" * 5000), ("source", "\\")):
            with self.subTest(parameter=name):
                self.assertError(self.call("GET", "/crm/stats", dict(base, **{name: value})), 400,
                                 "invalid_parameter", name)

    def test_sync_bodies(self):
        cases = [
            ("/crm/sync-meta", b'{"since": "0001-01-01T00:00:00+01:00"}', "invalid_parameter"),
            ("/crm/sync-meta", b'{"since": 1e400}', "invalid_parameter"),
            ("/crm/sync-meta", b'{"since": 1000000000000000000000000000000}', "invalid_parameter"),
            ("/crm/sync-meta", b'{"since": NaN}', "invalid_json"),
            ("/crm/sync-meta", b'{"page_ids": ["\\u00b2"]}', "invalid_parameter"),
            ("/crm/sync-meta", b'{"page_ids": ["\\ud800"]}', "invalid_parameter"),
            ("/crm/sync-meta", b'{"\\u0000": 1}', "invalid_parameter"),
            ("/crm/sync-meta", b'{"page_ids": ' + deep(1000).encode() + b"}", "invalid_json"),
            ("/crm/sync-meta", b'{"page_ids": [' + b"9" * 5000 + b"]}", "invalid_json"),
            ("/crm/sync-bigquery", b'{"full": Infinity}', "invalid_json"),
            ("/crm/sync-bigquery", b'{"full": "\\udfff"}', "invalid_parameter"),
            ("/crm/sync-bigquery", b"\xff\xfe", "invalid_json"),
        ]
        for path, body, code in cases:
            with self.subTest(path=path, body=body[:40]):
                self.assertError(self.call("POST", path, body=body), 400, code)

    def test_export_run_ids(self):
        for run_id in ("²", "9" * 5000, "99999999999999999999", "%00", "a%00b", "%ED%A0%80"):
            with self.subTest(run_id=run_id[:20]):
                self.assertError(self.call("GET", f"/crm/sync-bigquery/{run_id}"), 404, "not_found")
