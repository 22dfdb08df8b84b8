import json
from datetime import timedelta, timezone

from odoo import fields
from odoo.exceptions import AccessError, MissingError
from odoo.tests import TransactionCase, new_test_user, tagged

from ..tools import cron_budget
from .common import FORM_ID, PAGE_ID, STANDARD_QUESTIONS, MetaTestMixin, bus_payloads, run_cron
from .fake_graph import graph_error_body, lead_object
from .test_meta_processing import TOKEN_EXPIRED

LEADS_PATH = f"/{FORM_ID}/leads"


def unix(naive_utc):
    return int(naive_utc.replace(tzinfo=timezone.utc).timestamp())


@tagged("post_install", "-at_install")
class TestMetaSync(MetaTestMixin, TransactionCase):
    """Form sync, back-fill through cursor paging, the API's sync method and the crons."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_meta(graph_url=cls.start_fake_graph())
        cls.manager = new_test_user(cls.env, login="meta_manager", name="Mona Manager",
                                    groups="sales_team.group_sale_manager")
        cls.Page = cls.env["crm.meta.page"].with_user(cls.manager)

    def setUp(self):
        super().setUp()
        self.graph.requests.clear()
        self.now = fields.Datetime.now()
        self.graph.add_page_forms(PAGE_ID, [{"id": FORM_ID, "name": "Gold plan signup", "status": "ACTIVE",
                                             "locale": "ar_AR", "questions": STANDARD_QUESTIONS}])
        # Commits of the crons would end the test's transaction: keep them inside it.
        self.patch(self.env.cr, "commit", lambda: None)

    def leads(self, count, start=0, age=timedelta(hours=1), **answers):
        return [lead_object(f"70000000000{start + i:05d}", FORM_ID, self.now - age + timedelta(minutes=i), {
            "full_name": f"Back-fill {start + i}", "email": f"backfill{start + i}@example.com", **answers})
            for i in range(count)]

    def test_sync_forms_creates_forms_and_default_mapping_and_keeps_admin_choices(self):
        self.graph.add_page_forms(PAGE_ID, [
            {"id": FORM_ID, "name": "Gold plan signup v2", "status": "ACTIVE", "questions": STANDARD_QUESTIONS},
            {"id": "900000000000012", "name": "Webinar", "status": "ARCHIVED", "locale": "en_US",
             "questions": [{"key": "email", "label": "Email", "type": "EMAIL"},
                           {"key": "job_title", "label": "Job title", "type": "JOB_TITLE"},
                           {"key": "favourite_topic", "label": "Topic?", "type": "CUSTOM"}]},
        ])
        self.form.mapping_ids.filtered(lambda line: line.question_key == "city").target = "description"
        self.page.with_user(self.manager).action_sync_forms()
        self.assertEqual(self.form.name, "Gold plan signup v2")
        webinar = self.env["crm.meta.form"].search([("form_id", "=", "900000000000012")])
        self.assertEqual((webinar.page_id, webinar.status, webinar.locale), (self.page, "archived", "en_US"))
        self.assertEqual({line.question_key: line.target for line in webinar.mapping_ids},
                         {"email": "email", "job_title": "job_title", "favourite_topic": "description"})
        self.assertEqual(self.form.mapping_ids.filtered(lambda line: line.question_key == "city").target,
                         "description")
        request = self.graph.received(f"/{PAGE_ID}/leadgen_forms", "GET")[0]
        self.assertEqual(request["authorization"], "Bearer EAAP-page-token")

    def test_sync_forms_with_expired_token_flags_the_page(self):
        self.graph.respond(f"/{PAGE_ID}/leadgen_forms", (400, TOKEN_EXPIRED))
        action = self.page.with_user(self.manager).action_sync_forms()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn("Session has expired", self.page.token_error)

    def test_small_backfill_runs_in_the_call_and_creates_only_missing_leads(self):
        leads = self.leads(7)
        leads[6]["field_data"][1]["values"] = ["backfill1@example.com"]  # same person as lead 1
        self.graph.add_form_leads(FORM_ID, leads)
        # Lead 0 already came through the webhook.
        self.graph.add_lead(leads[0])
        self.store_leadgen(leads[0]["id"])
        self.process_all()
        since = self.now - timedelta(days=2)
        result = self.Page._api_sync_meta(form_ids=[FORM_ID], since=since.isoformat())
        self.assertEqual(
            {key: result[key] for key in ("mode", "forms", "fetched", "created", "merged", "already_present",
                                          "failed", "queued", "errors")},
            {"mode": "inline", "forms": 1, "fetched": 7, "created": 5, "merged": 1, "already_present": 1,
             "failed": 0, "queued": 0, "errors": []})
        pages = self.graph.received(LEADS_PATH, "GET")
        self.assertEqual(len(pages), 1)
        self.assertEqual(json.loads(pages[0]["args"]["filtering"]), [
            {"field": "time_created", "operator": "GREATER_THAN", "value": unix(since)}])
        self.assertIn("field_data", pages[0]["args"]["fields"])
        created = self.env["crm.lead"].search([("meta_form_id", "=", self.form.id)])
        self.assertEqual(sorted(created.mapped("meta_leadgen_id")), sorted(lead["id"] for lead in leads[:6]))
        # One summary toast for the back-filled leads, not one per lead.
        toasts = [t for t in bus_payloads(self.env, self.salesperson, "simple_notification")
                  if "back-fill" in t["message"]]
        self.assertEqual(len(toasts), 1)
        self.assertEqual(toasts[0]["message"], "6 Lead Ads answers recovered by the back-fill.")
        self.assertEqual(len(bus_payloads(self.env, self.salesperson, "crm_whatsapp_bridge/new_message")), 1,
                         "only the lead that came through the webhook")
        # No further Graph call per lead: the back-fill carries the answers.
        self.assertFalse([p for p in self.graph.paths() if p.startswith("/70000000000")][1:])
        # A second run finds everything present.
        again = self.Page._api_sync_meta(form_ids=[FORM_ID], since=since.isoformat())
        self.assertEqual((again["fetched"], again["created"], again["already_present"]), (7, 0, 7))

    def test_backfill_cron_follows_cursor_pages(self):
        self.graph.add_form_leads(FORM_ID, self.leads(7), page_size=3)
        since = self.now - timedelta(days=2)
        result = self.Page._api_sync_meta(form_ids=[FORM_ID], since=since.isoformat())
        self.assertEqual((result["mode"], result["fetched"], result["queued"], result["created"]),
                         ("queued", 3, 3, 0))
        self.assertFalse(self.env["crm.lead"].search([("meta_form_id", "=", self.form.id)]),
                         "a back-fill with more than one page creates nothing inside the call")
        self.assertAlmostEqual(self.form.backfill_since, since, delta=timedelta(seconds=1))
        self.env["crm.meta.form"]._cron_backfill()
        pages = self.graph.received(LEADS_PATH, "GET")
        self.assertEqual(len(pages), 4, "the call's first page, then the cron's three")
        self.assertNotIn("after", pages[1]["args"])
        self.assertTrue(pages[2]["args"]["after"])
        self.assertNotIn("access_token", pages[2]["args"])
        self.assertEqual(pages[2]["authorization"], "Bearer EAAP-page-token")
        self.assertTrue(self.form.last_backfill_result.startswith("7 read, 4 new, 3 already present"),
                        self.form.last_backfill_result)
        self.process_all()
        created = self.env["crm.lead"].search([("meta_form_id", "=", self.form.id)])
        self.assertEqual(len(created), 7)

    def test_backfill_respects_since(self):
        self.graph.add_form_leads(FORM_ID, self.leads(2, age=timedelta(days=3)) + self.leads(3, start=10))
        result = self.Page._api_sync_meta(page_ids=[PAGE_ID], since=(self.now - timedelta(days=1)).isoformat())
        self.assertEqual((result["mode"], result["fetched"], result["created"]), ("inline", 3, 3))

    def test_rate_limit_while_paging_is_retried(self):
        self.graph.add_form_leads(FORM_ID, self.leads(5), page_size=2,
                                  errors={1: (400, graph_error_body(17, "User request limit reached"))})
        result = self.Page._api_sync_meta(form_ids=[int(FORM_ID)], since=unix(self.now - timedelta(days=1)))
        self.assertEqual((result["mode"], result["fetched"], result["errors"]), ("queued", 2, []))
        self.env["crm.meta.form"]._cron_backfill()
        self.assertTrue(self.form.last_backfill_result.startswith("5 read, 3 new, 2 already present"),
                        self.form.last_backfill_result)
        self.assertFalse(self.form.backfill_since, "the throttled page was retried, not left for later")
        self.process_all()
        self.assertEqual(self.env["crm.lead"].search_count([("meta_form_id", "=", self.form.id)]), 5)

    def test_expired_token_reports_error_and_flags_page(self):
        self.graph.respond(LEADS_PATH, (400, TOKEN_EXPIRED))
        since = (self.now - timedelta(days=30)).isoformat()
        result = self.Page._api_sync_meta(form_ids=[FORM_ID], since=since)
        self.assertEqual(result["fetched"], 0)
        self.assertEqual(result["errors"][0]["form_id"], FORM_ID)
        self.assertIn("Session has expired", result["errors"][0]["message"])
        self.assertTrue(self.page.token_error)
        calls = len(self.graph.received(LEADS_PATH, "GET"))
        self.Page._api_sync_meta(form_ids=[FORM_ID], since=since)
        self.assertEqual(len(self.graph.received(LEADS_PATH, "GET")), calls, "no call with a known bad token")

    def test_arguments_are_validated_with_the_parameter_named(self):
        cases = [
            ({"page_ids": "104729358201746"}, ValueError, "page_ids"),
            ({"page_ids": ["abc"]}, ValueError, "page_ids"),
            ({"form_ids": [True]}, ValueError, "form_ids"),
            ({"since": "last week"}, ValueError, "since"),
            ({"since": (self.now + timedelta(days=2)).isoformat()}, ValueError, "since"),
            ({"page_ids": ["123"]}, MissingError, "page_ids"),
            ({"form_ids": [FORM_ID, "456"]}, MissingError, "form_ids"),
        ]
        for kwargs, error, name in cases:
            with self.subTest(**kwargs), self.assertRaises(error) as info:
                self.Page._api_sync_meta(**kwargs)
            self.assertIn(name, str(info.exception))

    def test_only_sales_managers_may_sync(self):
        with self.assertRaises(AccessError):
            self.env["crm.meta.page"].with_user(self.salesperson)._api_sync_meta(form_ids=[FORM_ID])

    def test_large_range_is_queued_to_the_cron(self):
        self.graph.add_form_leads(FORM_ID, self.leads(4, age=timedelta(days=30)), page_size=3)
        cron = self.env.ref("crm_whatsapp_bridge.ir_cron_meta_backfill")
        triggers = self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])
        result = self.Page._api_sync_meta(page_ids=[PAGE_ID])  # default: 90 days
        self.assertEqual((result["mode"], result["forms"], result["fetched"], result["created"]), ("queued", 1, 3, 0))
        self.assertEqual(self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), triggers + 1)
        self.assertAlmostEqual(self.form.backfill_since, self.now - timedelta(days=90), delta=timedelta(minutes=1))
        self.env["crm.meta.form"]._cron_backfill()
        self.assertFalse(self.form.backfill_since)
        self.assertTrue(self.form.last_backfill_result.startswith("4 read, 1 new"), self.form.last_backfill_result)
        self.process_all()
        self.assertEqual(self.env["crm.lead"].search_count([("meta_form_id", "=", self.form.id)]), 4)

    def test_older_than_retention_is_clamped(self):
        a_year_ago = (self.now - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
        result = self.Page._api_sync_meta(form_ids=[FORM_ID], since=a_year_ago)
        self.assertTrue(result["since_clamped"])
        self.assertAlmostEqual(fields.Datetime.from_string(result["since"][:19].replace("T", " ")),
                               self.now - timedelta(days=90), delta=timedelta(minutes=1))

    def test_sync_now_button_queues_the_90_days(self):
        self.graph.add_form_leads(FORM_ID, self.leads(3, age=timedelta(days=60)), page_size=2)
        action = self.page.with_user(self.manager).action_sync_now()
        self.assertEqual(action["tag"], "display_notification")
        self.assertTrue(self.form.backfill_since)

    def test_daily_cron_reads_the_last_48_hours(self):
        self.graph.add_form_leads(FORM_ID, self.leads(2, age=timedelta(days=5)) + self.leads(3, start=20))
        self.env["crm.meta.page"]._cron_daily_sync()
        request = self.graph.received(LEADS_PATH, "GET")[0]
        since = json.loads(request["args"]["filtering"])[0]["value"]
        self.assertAlmostEqual(since, unix(self.now - timedelta(hours=48)), delta=120)
        self.process_all()
        self.assertEqual(self.env["crm.lead"].search_count([("meta_form_id", "=", self.form.id)]), 3)

    def test_page_token_is_admin_only_and_salespeople_read_only(self):
        for user in (self.salesperson, self.manager):
            with self.assertRaises(AccessError):
                self.page.with_user(user).read(["access_token"])
        self.assertEqual(self.page.with_user(self.admin).read(["access_token"])[0]["access_token"], "EAAP-page-token")
        self.assertEqual(self.page.with_user(self.salesperson).read(["name"])[0]["name"], "Amin Trading")
        with self.assertRaises(AccessError):
            self.page.with_user(self.salesperson).write({"name": "mine"})
        with self.assertRaises(AccessError):
            self.form.mapping_ids[0].with_user(self.salesperson).write({"target": "ignore"})
        self.form.mapping_ids[0].with_user(self.manager).write({"target": "ignore"})

    def test_backfill_stopped_by_the_budget_resumes_at_meta_cursor(self):
        self.graph.add_form_leads(FORM_ID, self.leads(7, start=300, age=timedelta(days=10)), page_size=3)
        self.form._queue_backfill(self.now - timedelta(days=30))
        self.patch(cron_budget, "POLL_REAL_SECONDS", 0)
        runs = []
        for _i in range(3):
            runs.append(run_cron(self.env, "crm_whatsapp_bridge.ir_cron_meta_backfill",
                                 lambda model: model._cron_backfill()))
            if not self.form.backfill_since:
                break
        self.assertEqual(runs, [((1, 1), 1), ((1, 1), 1), ((1, 0), 0)], "one page per spent poll")
        pages = self.graph.received(f"/{FORM_ID}/leads", "GET")
        afters = [page["args"].get("after") for page in pages]
        self.assertEqual(len(afters), 3, "no page read twice")
        self.assertIsNone(afters[0])
        self.assertTrue(afters[1] and afters[2] and afters[1] != afters[2], "later pages start at the saved cursor")
        self.assertFalse(self.form.backfill_after)
        self.assertTrue(self.form.last_backfill_result.startswith("1 read, 1 new"), self.form.last_backfill_result)
        self.assertEqual(self.env["crm.inbox.event"].search_count([("source", "=", "meta")]), 7)
