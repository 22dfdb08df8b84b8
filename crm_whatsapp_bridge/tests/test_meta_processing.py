from datetime import datetime, timedelta

from odoo.tests import TransactionCase, tagged

from .common import FORM_ID, PAGE_ID, MetaTestMixin, bus_payloads
from .fake_graph import graph_error_body, lead_object

RATE_LIMIT = graph_error_body(4, "(#4) Application request limit reached")
TOKEN_EXPIRED = {"error": {
    "message": "Error validating access token: Session has expired on Sunday, 24-Nov-24 10:00:00 PST.",
    "type": "OAuthException", "code": 190, "error_subcode": 463, "fbtrace_id": "A1b2C3d4E5f6G7h8I9j0K1l"}}

AN_HOUR_AGO = datetime.now().replace(microsecond=0) - timedelta(hours=1)


@tagged("post_install", "-at_install")
class TestMetaLeadProcessing(MetaTestMixin, TransactionCase):
    """From leadgen inbox events to partners and leads, through a local Graph API."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_meta(graph_url=cls.start_fake_graph())

    def setUp(self):
        super().setUp()
        self.graph.requests.clear()

    def serve(self, leadgen_id, answers, **extra):
        extra.setdefault("form_id", FORM_ID)
        lead = lead_object(leadgen_id, extra.pop("form_id"), AN_HOUR_AGO, answers, **extra)
        self.graph.add_lead(lead)
        return lead

    def receive(self, leadgen_id, answers, **extra):
        self.serve(leadgen_id, answers, **extra)
        self.store_leadgen(leadgen_id)
        self.process_all()
        event = self.event_of(leadgen_id)
        return event, event.lead_id

    def test_sample_lead_becomes_a_mapped_facebook_lead(self):
        self.graph.add_lead(dict(self._sample(), form_id=FORM_ID))
        self.store_leadgen("1234567890123456")
        self.process_all()
        event = self.event_of("1234567890123456")
        self.assertEqual(event.state, "done", event.last_error)
        lead = event.lead_id
        self.assertEqual(lead.name, "Gold plan signup: Yousef Amin")
        self.assertEqual((lead.contact_name, lead.email_from, lead.phone, lead.city, lead.partner_name),
                         ("Yousef Amin", "yousef.amin@example.com", "+15550101260", "Amman", "Amin Trading"))
        self.assertEqual(lead.source_id, self.env.ref("utm.utm_source_facebook"))
        self.assertEqual(lead.medium_id, self.env.ref("crm_whatsapp_bridge.utm_medium_lead_ad"))
        self.assertEqual(lead.campaign_id.name, "Q4 Gold plan leads")
        self.assertEqual((lead.team_id, lead.user_id, lead.meta_page_id, lead.meta_form_id),
                         (self.team, self.salesperson, self.page, self.form))
        self.assertEqual((lead.meta_leadgen_id, lead.meta_ad_id, lead.meta_adset_id, lead.meta_campaign_id,
                          lead.meta_form_ref, lead.meta_platform),
                         ("1234567890123456", "120210000000000002", "120210000000000003",
                          "120210000000000004", FORM_ID, "fb"))
        self.assertEqual(lead.meta_submitted_at, AN_HOUR_AGO)
        self.assertIn("How many users?", lead.description)
        self.assertIn("11-50", lead.description)
        self.assertIn("how_many_users?: 11-50", lead.meta_answers_text)
        self.assertIn("marketing_optin: 1", lead.meta_answers_text)
        self.assertEqual(lead.partner_id.email, "yousef.amin@example.com")
        self.assertEqual(lead.partner_id.phone, "+15550101260")
        # The page token was used to read the lead, with the fields the spec lists.
        request = self.graph.received("/1234567890123456", "GET")[0]
        self.assertEqual(request["authorization"], "Bearer EAAP-page-token")
        self.assertIn("field_data", request["args"]["fields"])
        post = lead.message_ids.filtered(lambda m: m.message_type == "comment")
        self.assertEqual(len(post), 1)
        self.assertIn("Amin Trading", str(post.body))
        notif = self.env["mail.notification"].search([("mail_message_id", "=", post.id),
                                                      ("res_partner_id", "=", self.salesperson.partner_id.id)])
        self.assertEqual(notif.notification_type, "inbox")
        toasts = bus_payloads(self.env, self.salesperson, "crm_whatsapp_bridge/new_message")
        self.assertEqual([(t["lead_id"], t["title"]) for t in toasts], [(lead.id, "Lead Ads")])

    def _sample(self):
        return {
            "id": "1234567890123456", "created_time": AN_HOUR_AGO.strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "ad_id": "120210000000000002", "ad_name": "Gold plan - carousel", "adset_id": "120210000000000003",
            "campaign_id": "120210000000000004", "campaign_name": "Q4 Gold plan leads", "form_id": FORM_ID,
            "platform": "fb", "is_organic": False,
            "field_data": [
                {"name": "full_name", "values": ["Yousef Amin"]},
                {"name": "email", "values": ["yousef.amin@example.com"]},
                {"name": "phone_number", "values": ["+15550101260"]},
                {"name": "city", "values": ["Amman"]},
                {"name": "company_name", "values": ["Amin Trading"]},
                {"name": "how_many_users?", "values": ["11-50"]},
            ],
            "custom_disclaimer_responses": [{"checkbox_key": "marketing_optin", "is_checked": "1"}],
        }

    def test_instagram_lead_gets_instagram_source(self):
        _event, lead = self.receive("5000000000000001", {"full_name": "Rana", "email": "rana@example.com"},
                                    platform="ig")
        self.assertEqual(lead.source_id, self.env.ref("crm_whatsapp_bridge.utm_source_instagram"))
        self.assertEqual(lead.meta_platform, "ig")

    def test_redelivered_leadgen_is_one_event_and_one_lead(self):
        self.serve("5000000000000002", {"full_name": "Omar", "email": "omar@example.com"})
        self.assertEqual(self.store_leadgen("5000000000000002"), 1)
        self.assertEqual(self.store_leadgen("5000000000000002", "5000000000000002"), 0)
        self.process_all()
        self.assertEqual(self.env["crm.lead"].search_count([("meta_leadgen_id", "=", "5000000000000002")]), 1)
        self.assertEqual(len(self.graph.received("/5000000000000002", "GET")), 1)

    def test_existing_partner_found_by_email_or_local_phone(self):
        by_email = self.env["res.partner"].create({"name": "Lina K", "email": "Lina@Example.com"})
        _event, lead = self.receive("5000000000000003", {"full_name": "Lina", "email": "lina@example.com"})
        self.assertEqual(lead.partner_id, by_email)
        # A phone typed without country code is read in the country answered on the form.
        by_phone = self.env["res.partner"].create({"name": "Hadi", "phone": "+962 79 123 4567"})
        _event, lead = self.receive("5000000000000004", {"full_name": "Hadi", "phone_number": "079 123 4567",
                                                         "country": "JO"})
        self.assertEqual(lead.partner_id, by_phone)
        self.assertEqual(lead.country_id.code, "JO")

    def test_person_with_open_lead_gets_answers_posted_not_a_duplicate(self):
        _event, first = self.receive("5000000000000005", {"full_name": "Maya", "email": "maya@example.com"})
        posts_before = len(first.message_ids)
        event, second = self.receive("5000000000000006", {"full_name": "Maya", "email": "maya@example.com",
                                                          "how_many_users?": "51-200"})
        self.assertEqual(event.state, "done", event.last_error)
        self.assertEqual(second, first)
        self.assertEqual(first.meta_leadgen_id, "5000000000000005")
        self.assertEqual(len(first.message_ids), posts_before + 1)
        self.assertIn("51-200", str(first.message_ids[0].body))
        self.assertEqual(self.env["crm.lead"].search_count([("partner_id", "=", first.partner_id.id)]), 1)

    def test_whatsapp_lead_of_same_person_is_reused_and_gets_meta_ids(self):
        partner = self.env["res.partner"].create({"name": "Sami", "phone": "+962 78 555 0199"})
        whatsapp_lead = self.env["crm.lead"].create({"name": "WhatsApp: Sami", "partner_id": partner.id})
        _event, lead = self.receive("5000000000000007", {"full_name": "Sami", "phone_number": "00962785550199"})
        self.assertEqual(lead, whatsapp_lead)
        self.assertEqual(lead.meta_leadgen_id, "5000000000000007")

    def test_mapping_to_tag_property_ignore_and_names(self):
        self.form.mapping_ids.filtered(lambda line: line.question_key == "how_many_users?").target = "tag"
        self.env["crm.meta.form.mapping"].create([
            {"form_id": self.form.id, "question_key": "budget", "label": "Budget", "target": "property"},
            {"form_id": self.form.id, "question_key": "secret", "target": "ignore"},
        ])
        _event, lead = self.receive("5000000000000008", {
            "first_name": "Nour", "last_name": "Saleh", "email": "nour@example.com",
            "how_many_users?": "11-50", "budget": "5000 USD", "secret": "do not keep", "favourite_color": "blue"})
        self.assertEqual(lead.contact_name, "Nour Saleh")
        self.assertEqual(lead.tag_ids.mapped("name"), ["11-50"])
        self.assertEqual(lead.lead_properties, {"meta_budget": "5000 USD"})
        self.assertEqual(self.team.lead_properties_definition,
                         [{"name": "meta_budget", "string": "Budget", "type": "char"}])
        self.assertIn("blue", lead.description)
        self.assertNotIn("do not keep", lead.description)

    def test_unknown_page_waits_dead_and_is_processed_once_page_added(self):
        self.serve("5000000000000009", {"full_name": "Ziad", "email": "ziad@example.com"})
        self.store_leadgen("5000000000000009", page_id="100000000000099")
        self.process_all()
        event = self.event_of("5000000000000009")
        self.assertEqual(event.state, "dead")
        self.assertIn("100000000000099", event.last_error)
        self.assertIn(self.admin.partner_id, event.message_ids.partner_ids)
        # Adding the page requeues its waiting leads.
        self.env["crm.meta.page"].create({"name": "Second page", "page_id": "100000000000099",
                                          "access_token": "EAAP-other"})
        self.assertEqual(event.state, "pending")
        self.process_all()
        self.assertEqual(event.state, "done", event.last_error)
        self.assertEqual(event.lead_id.email_from, "ziad@example.com")

    def test_expired_token_no_retry_storm_admins_told_once_then_requeued_with_new_token(self):
        for leadgen_id in ("5000000000000010", "5000000000000011", "5000000000000012"):
            self.graph.respond(f"/{leadgen_id}", (400, TOKEN_EXPIRED))
        self.store_leadgen("5000000000000010", "5000000000000011", "5000000000000012")
        self.process_all()
        events = self.env["crm.inbox.event"].search([("channel_ref", "=", PAGE_ID), ("source", "=", "meta")])
        self.assertEqual(set(events.mapped("state")), {"dead"})
        self.assertIn("Session has expired", events[0].last_error)
        # One Graph call, no retries: the page is known to be broken for the other events.
        self.assertEqual(len([p for p in self.graph.paths() if p.startswith("/50000000000000")]), 1)
        self.assertIn("Session has expired", self.page.token_error)
        admin_posts = self.page.message_ids.filtered(lambda m: self.admin.partner_id in m.partner_ids)
        self.assertEqual(len(admin_posts), 1)
        self.assertFalse(events.message_ids.filtered(lambda m: self.admin.partner_id in m.partner_ids))
        toasts = bus_payloads(self.env, self.admin, "simple_notification")
        self.assertEqual(len(toasts), 1)
        # A new token clears the problem and the waiting leads go through.
        for leadgen_id in ("5000000000000010", "5000000000000011", "5000000000000012"):
            self.serve(leadgen_id, {"full_name": f"P{leadgen_id[-2:]}", "email": f"p{leadgen_id[-2:]}@example.com"})
        self.page.access_token = "EAAP-new-token"
        self.assertFalse(self.page.token_error)
        self.process_all()
        self.assertEqual(set(events.mapped("state")), {"done"})
        self.assertEqual(len(events.lead_id), 3)

    def test_rate_limit_is_retried_later_with_backoff(self):
        self.graph.respond("/5000000000000013", (400, RATE_LIMIT))
        self.store_leadgen("5000000000000013")
        self.process_all()
        event = self.event_of("5000000000000013")
        self.assertEqual((event.state, event.attempts), ("pending", 1))
        self.assertTrue(event.next_attempt_at)
        self.assertGreater(len(self.graph.received("/5000000000000013", "GET")), 1, "tenacity retried in-call")
        self.assertFalse(self.page.token_error)

    def test_lead_without_email_or_phone_still_becomes_a_lead(self):
        event, lead = self.receive("5000000000000014", {"full_name": "Anonymous", "city": "Irbid"})
        self.assertEqual(event.state, "done", event.last_error)
        self.assertFalse(lead.partner_id)
        self.assertEqual((lead.contact_name, lead.city), ("Anonymous", "Irbid"))

    def test_unknown_form_uses_standard_mapping(self):
        _event, lead = self.receive("5000000000000015", {"full_name": "Dana", "email": "dana@example.com"},
                                    form_id="900000000000999", is_organic=True)
        self.assertFalse(lead.meta_form_id)
        self.assertEqual(lead.meta_form_ref, "900000000000999")
        self.assertEqual(lead.email_from, "dana@example.com")
        self.assertEqual(lead.medium_id, self.env.ref("crm_whatsapp_bridge.utm_medium_lead_form_organic"))

    def test_submissions_of_one_chunk_make_one_contact_and_one_lead_per_person(self):
        self.serve("5000000000000020", {"full_name": "Reem", "email": "reem@example.com",
                                        "phone_number": "+962791110000"})
        self.serve("5000000000000021", {"full_name": "Reem A.", "email": "REEM@example.com",
                                        "how_many_users?": "51-200"})
        self.serve("5000000000000022", {"full_name": "Reem", "phone_number": "+962 79 111 0000"})
        self.serve("5000000000000023", {"full_name": "Tamer", "email": "tamer@example.com"})
        self.store_leadgen("5000000000000020", "5000000000000021", "5000000000000022", "5000000000000023")
        self.process_all()
        events = [self.event_of(f"500000000000002{i}") for i in range(4)]
        self.assertEqual([e.state for e in events], ["done"] * 4, [e.last_error for e in events])
        reem = events[0].lead_id
        self.assertEqual([e.lead_id for e in events[:3]], [reem] * 3, "one lead for one person")
        self.assertEqual(reem.meta_leadgen_id, "5000000000000020")
        self.assertEqual(self.env["res.partner"].search_count([("email_normalized", "=", "reem@example.com")]), 1)
        self.assertEqual(len(reem.message_ids.filtered(lambda m: m.message_type == "comment")), 3)
        self.assertNotEqual(events[3].lead_id, reem)
        toasts = bus_payloads(self.env, self.salesperson, "crm_whatsapp_bridge/new_message")
        self.assertEqual(sorted(t["message"] for t in toasts),
                         ["3 new Lead Ads answers from Reem", "New Lead Ads answers from Tamer"])

    def test_a_submission_failing_inside_the_batch_fails_alone(self):
        # A real database refusal (not a mock): contacts named "Poison" cannot be inserted.
        self.env.cr.execute("ALTER TABLE res_partner ADD CONSTRAINT cwb_test_poison CHECK (name <> 'Poison')")
        self.serve("5000000000000030", {"full_name": "Poison", "email": "poison@example.com"})
        self.serve("5000000000000031", {"full_name": "Wafa", "email": "wafa@example.com"})
        self.store_leadgen("5000000000000030", "5000000000000031")
        self.process_all()
        bad, good = self.event_of("5000000000000030"), self.event_of("5000000000000031")
        self.assertEqual((good.state, good.lead_id.partner_id.name), ("done", "Wafa"), good.last_error)
        self.assertEqual((bad.state, bad.attempts), ("pending", 1))
        self.assertFalse(self.env["crm.lead"].search([("meta_leadgen_id", "=", "5000000000000030")]))
        toasts = bus_payloads(self.env, self.salesperson, "crm_whatsapp_bridge/new_message")
        self.assertEqual([t["message"] for t in toasts], ["New Lead Ads answers from Wafa"])
