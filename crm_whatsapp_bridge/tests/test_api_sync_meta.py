import json
from datetime import timedelta

from odoo import fields
from odoo.tests import HttpCase, new_test_user, tagged

from .common import FORM_ID, PAGE_ID, STANDARD_QUESTIONS, MetaTestMixin, api_keys
from .fake_graph import lead_object


@tagged("post_install", "-at_install")
class TestSyncMetaRoute(MetaTestMixin, HttpCase):
    """POST /crm/sync-meta over HTTP: the back-fill behind the JSON API's auth and error style."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_meta(graph_url=cls.start_fake_graph())
        cls.manager = new_test_user(cls.env, login="sync_manager", groups="sales_team.group_sale_manager")
        cls.keys = api_keys(cls.env, cls.manager, cls.salesperson)

    def setUp(self):
        super().setUp()
        self.graph.requests.clear()
        self.now = fields.Datetime.now()
        self.graph.add_page_forms(PAGE_ID, [{"id": FORM_ID, "name": "Gold plan signup", "status": "ACTIVE",
                                             "questions": STANDARD_QUESTIONS}])
        self.graph.add_form_leads(FORM_ID, [
            lead_object(f"7100000000{i:05d}", FORM_ID, self.now - timedelta(hours=3, minutes=-i),
                        {"full_name": f"Route lead {i}", "email": f"route{i}@example.com"})
            for i in range(3)])

    def post(self, body, user=None, raw=None):
        headers = {"Authorization": f"Bearer {self.keys[user or self.manager]}",
                   "Content-Type": "application/json"}
        return self.opener.post(self.base_url() + "/crm/sync-meta", data=raw if raw is not None else body,
                                headers=headers, timeout=60)

    def post_json(self, payload, user=None):
        return self.post(json.dumps(payload), user=user)

    def assertApiError(self, response, status, code, names=None):
        self.assertEqual(response.status_code, status, response.text)
        error = response.json()["error"]
        self.assertEqual(error["code"], code)
        if names:
            self.assertIn(names, error["message"])

    def test_backfill_answers_counts_and_is_idempotent(self):
        since = (self.now - timedelta(days=1)).isoformat()
        response = self.post_json({"form_ids": [FORM_ID], "since": since})
        self.assertEqual(response.status_code, 200, response.text)
        body = response.json()
        self.assertEqual((body["mode"], body["fetched"], body["created"], body["already_present"], body["failed"]),
                         ("inline", 3, 3, 0, 0))
        leads = self.env["crm.lead"].search([("meta_leadgen_id", "like", "7100000000%")])
        self.assertEqual(sorted(leads.mapped("email_from")), [f"route{i}@example.com" for i in range(3)])
        pages = self.graph.received(f"/{FORM_ID}/leads", "GET")
        self.assertEqual(len(pages), 1, "one page of three leads")
        self.assertEqual(pages[0]["args"]["limit"], "100")
        self.assertEqual(pages[0]["authorization"], "Bearer EAAP-page-token")
        again = self.post_json({"page_ids": [PAGE_ID], "since": since}).json()
        self.assertEqual((again["fetched"], again["created"], again["already_present"]), (3, 0, 3))

    def test_more_than_one_page_is_queued(self):
        self.graph.add_form_leads(FORM_ID, [
            lead_object(f"7200000000{i:05d}", FORM_ID, self.now - timedelta(days=20, minutes=-i),
                        {"full_name": f"Old lead {i}", "email": f"old{i}@example.com"})
            for i in range(5)], page_size=2)
        response = self.post_json({"form_ids": [FORM_ID], "since": (self.now - timedelta(days=30)).isoformat()})
        self.assertEqual(response.status_code, 202, response.text)
        body = response.json()
        self.assertEqual((body["mode"], body["fetched"], body["queued"], body["created"]), ("queued", 2, 2, 0))
        self.assertEqual(len(self.graph.received(f"/{FORM_ID}/leads", "GET")), 1, "only the first page in the request")
        self.assertFalse(self.env["crm.lead"].search([("meta_leadgen_id", "like", "7200000000%")]))
        self.assertTrue(self.env["crm.meta.form"].search([("form_id", "=", FORM_ID)]).backfill_since)

    def test_errors(self):
        self.assertApiError(self.post_json({}, user=self.salesperson), 403, "forbidden")
        self.assertApiError(self.post(None, raw="{not json"), 400, "invalid_json")
        self.assertApiError(self.post(None, raw="[1, 2]"), 400, "invalid_json")
        self.assertApiError(self.post_json({"forms": [FORM_ID]}), 400, "invalid_parameter", "forms")
        self.assertApiError(self.post_json({"since": "last tuesday"}), 400, "invalid_parameter", "since")
        self.assertApiError(self.post_json({"form_ids": "123"}), 400, "invalid_parameter", "form_ids")
        self.assertApiError(self.post_json({"form_ids": ["999999999999999"]}), 404, "not_found", "form_ids")
        self.assertFalse(self.graph.received(f"/{FORM_ID}/leads", "GET"))
