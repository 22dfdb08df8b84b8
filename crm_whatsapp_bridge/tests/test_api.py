import base64
import statistics
from datetime import datetime, timedelta

from odoo.tests import HttpCase, new_test_user, tagged

from .common import WhatsappTestMixin, api_keys, read_own_transaction_as_committed

# A window no other lead of a test database is created in: five years from now, at 09:00.
T0 = (datetime.now() + timedelta(days=5 * 365)).replace(hour=9, minute=0, second=0, microsecond=0)


def iso_z(moment):
    """``moment`` (naive UTC) as the API writes it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@tagged("post_install", "-at_install")
class TestCrmJsonApi(WhatsappTestMixin, HttpCase):
    """The JSON API through real HTTP requests, as each user's API key."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_whatsapp()
        cls.no_crm_user = new_test_user(cls.env, login="api_no_crm", groups="base.group_user")
        cls.keys = api_keys(cls.env, cls.salesperson, cls.other_salesperson, cls.admin, cls.no_crm_user)
        Stage = cls.env["crm.stage"]
        cls.stage_new = Stage.create({"name": "API New", "sequence": 1})
        cls.stage_won = Stage.create({"name": "API Won", "sequence": 90, "is_won": True})
        cls.whatsapp = cls.env.ref("crm_whatsapp_bridge.utm_source_whatsapp")
        cls.facebook = cls.env.ref("utm.utm_source_facebook")
        cls.newsletter = cls.env["utm.source"].create({"name": "API Newsletter"})
        cls.leads = cls.env["crm.lead"]
        specs = [
            # name, type, owner, stage, source, email, phone
            ("Alpha", "lead", cls.salesperson, cls.stage_new, cls.whatsapp, "alpha@example.com", "+966501110001"),
            ("Bravo", "opportunity", cls.salesperson, cls.stage_won, cls.whatsapp, "", "+966501110002"),
            ("Charlie", "opportunity", cls.other_salesperson, cls.stage_new, cls.facebook, "c@example.com", ""),
            ("Delta", "opportunity", cls.other_salesperson, cls.stage_won, cls.newsletter, "", ""),
            ("Echo", "lead", cls.env["res.users"], cls.stage_new, cls.whatsapp, "echo@example.com", ""),
            ("Foxtrot", "opportunity", cls.salesperson, cls.stage_new, cls.facebook, "", "0501110006"),
            ("Golf", "opportunity", cls.salesperson, cls.stage_new, cls.whatsapp, "", ""),
        ]
        for name, lead_type, user, stage, source, email, phone in specs:
            cls.leads |= cls.env["crm.lead"].create({
                "name": f"API {name}", "type": lead_type, "user_id": user.id, "team_id": cls.team.id,
                "stage_id": stage.id, "source_id": source.id, "email_from": email, "phone": phone,
                "country_id": cls.env.ref("base.sa").id})
        # Won the way salespeople win: by moving the lead to a won stage (which sets date_closed).
        won = cls.leads.filtered(lambda lead: lead.stage_id == cls.stage_won)
        won.stage_id = cls.stage_new
        won.stage_id = cls.stage_won
        cls.lost = cls.leads.filtered(lambda lead: lead.name in ("API Charlie", "API Golf"))
        cls.lost.action_set_lost()
        # Fixed creation and write times, one second apart, so the tests can reason about order.
        for offset, lead in enumerate(cls.leads):
            cls._stamp(lead, created=T0 + timedelta(seconds=offset), written=T0 + timedelta(seconds=offset))

    def setUp(self):
        super().setUp()
        read_own_transaction_as_committed(self)

    @classmethod
    def _stamp(cls, lead, created=None, written=None):
        # write_date and create_date are log fields the ORM sets itself; inside one test
        # transaction now() never moves, so the test sets them the way later transactions would.
        cls.env.flush_all()
        if created:
            cls.env.cr.execute("UPDATE crm_lead SET create_date = %s WHERE id = %s", (created, lead.id))
        if written:
            cls.env.cr.execute("UPDATE crm_lead SET write_date = %s WHERE id = %s", (written, lead.id))
        lead.invalidate_recordset(["create_date", "write_date"])

    def get(self, path, user=None, key=None, **params):
        headers = {}
        if user or key:
            headers["Authorization"] = f"Bearer {key or self.keys[user]}"
        return self.opener.get(self.base_url() + path, params=params, headers=headers, timeout=30)

    def lead_names(self, response):
        self.assertEqual(response.status_code, 200, response.text)
        return [lead["name"] for lead in response.json()["data"]]

    def assertApiError(self, response, status, code):
        self.assertEqual(response.status_code, status, response.text)
        self.assertEqual(response.headers["Content-Type"].split(";")[0], "application/json")
        error = response.json()["error"]
        self.assertEqual(error["code"], code)
        self.assertTrue(error["message"])
        return error["message"]

    # ------------------------------------------------------------------ auth

    def test_missing_or_bad_key_is_401_json(self):
        self.assertApiError(self.get("/crm/leads"), 401, "unauthorized")
        response = self.get("/crm/leads", key="0" * 40)
        self.assertApiError(response, 401, "unauthorized")
        self.assertEqual(response.headers.get("WWW-Authenticate"), "Bearer")
        self.assertApiError(self.get("/crm/stats", key="not-a-key"), 401, "unauthorized")

    def test_user_without_crm_right_is_403(self):
        self.assertApiError(self.get("/crm/leads", self.no_crm_user), 403, "forbidden")

    def test_options_only_tells_the_allowed_method(self):
        headers = {"Authorization": f"Bearer {self.keys[self.admin]}"}
        response = self.opener.options(self.base_url() + "/crm/sync-meta", headers=headers, timeout=30)
        self.assertEqual(response.status_code, 204)
        self.assertEqual(response.headers["Allow"], "POST")

    def test_unknown_path_under_the_api_is_json_404(self):
        self.assertApiError(self.get("/crm/leads/123", self.admin), 404, "not_found")

    # ------------------------------------------------------------ visibility

    def test_salesperson_sees_own_and_unassigned_leads_manager_sees_all(self):
        as_salesperson = self.lead_names(self.get("/crm/leads", self.salesperson, team_id=self.team.id))
        self.assertEqual(as_salesperson, ["API Alpha", "API Bravo", "API Echo", "API Foxtrot", "API Golf"])
        as_other = self.lead_names(self.get("/crm/leads", self.other_salesperson, team_id=self.team.id))
        self.assertEqual(as_other, ["API Charlie", "API Delta", "API Echo"])
        as_manager = self.lead_names(self.get("/crm/leads", self.admin, team_id=self.team.id))
        self.assertEqual(as_manager, [lead.name for lead in self.leads])

    def test_lead_fields(self):
        bravo = self.leads.filtered(lambda lead: lead.name == "API Bravo")
        self.env["crm.whatsapp.message"].create({
            "direction": "in", "account_id": self.account.id, "lead_id": bravo.id, "wa_id": "966501110002",
            "message_type": "text", "body": "hi", "message_date": T0 + timedelta(hours=2)})
        data = self.get("/crm/leads", self.admin, team_id=self.team.id, q="API Bravo").json()["data"]
        self.assertEqual(len(data), 1)
        lead = data[0]
        self.assertEqual(lead["id"], bravo.id)
        self.assertEqual(lead["type"], "opportunity")
        self.assertEqual(lead["stage"], {"id": self.stage_won.id, "name": "API Won"})
        self.assertEqual(lead["probability"], 100.0)
        self.assertEqual(lead["currency"], bravo.company_currency.name)
        self.assertEqual(lead["partner"]["phone"], "+966501110002")
        self.assertEqual(lead["salesperson"], {"id": self.salesperson.id, "name": "Sara Salesperson"})
        self.assertEqual(lead["team"]["id"], self.team.id)
        self.assertEqual(lead["source"], self.whatsapp.name)
        self.assertEqual(lead["last_whatsapp_message_at"], iso_z(T0 + timedelta(hours=2)))
        self.assertEqual(lead["created_at"], iso_z(T0 + timedelta(seconds=1)))
        self.assertTrue(lead["won_at"])
        self.assertIsNone(lead["lost_at"])
        self.assertTrue(lead["active"])
        self.assertTrue(lead["url"].endswith(f"/odoo/crm/{bravo.id}"))
        golf = self.get("/crm/leads", self.admin, team_id=self.team.id, q="API Golf").json()["data"][0]
        self.assertFalse(golf["active"])
        self.assertTrue(golf["lost_at"])
        self.assertIsNone(golf["won_at"])
        foxtrot = self.get("/crm/leads", self.admin, team_id=self.team.id, q="API Foxtrot").json()["data"][0]
        self.assertEqual(foxtrot["partner"]["phone"], "+966501110006", "a national number is given in E.164")

    # --------------------------------------------------------------- filters

    def test_filters(self):
        def names(**params):
            return self.lead_names(self.get("/crm/leads", self.admin, team_id=self.team.id, **params))

        self.assertEqual(names(stage="API Won"), ["API Bravo", "API Delta"])
        self.assertEqual(names(stage=str(self.stage_won.id)), ["API Bravo", "API Delta"])
        self.assertEqual(names(source="whatsapp"), ["API Alpha", "API Bravo", "API Echo", "API Golf"])
        self.assertEqual(names(source="facebook"), ["API Charlie", "API Foxtrot"])
        self.assertEqual(names(source="api newsletter"), ["API Delta"])
        self.assertEqual(names(user_id=self.other_salesperson.id), ["API Charlie", "API Delta"])
        self.assertEqual(names(type="lead"), ["API Alpha", "API Echo"])
        self.assertEqual(names(created_after=iso_z(T0 + timedelta(seconds=4))), ["API Foxtrot", "API Golf"])
        in_riyadh = (T0 + timedelta(hours=3, seconds=5)).strftime("%Y-%m-%dT%H:%M:%S+03:00")  # T0 + 5 s
        self.assertEqual(names(updated_after=in_riyadh), ["API Golf"])
        self.assertEqual(names(q="echo@example"), ["API Echo"])
        self.assertEqual(names(q="501110002"), ["API Bravo"])
        self.assertEqual(names(q="charlie"), ["API Charlie"])
        self.assertEqual(names(limit=2), ["API Alpha", "API Bravo"])
        self.assertEqual(names(user_id=self.salesperson.id, type="opportunity", source="whatsapp"),
                         ["API Bravo", "API Golf"])

    def test_bad_parameters_are_named(self):
        cases = {
            "limit": ("0", 400, "invalid_parameter"),
            "type": ("deal", 400, "invalid_parameter"),
            "created_after": ("yesterday", 400, "invalid_parameter"),
            "cursor": ("garbage", 400, "invalid_parameter"),
            "user_id": ("abc", 400, "invalid_parameter"),
            "source": ("no such source", 400, "invalid_parameter"),
            "team_id": ("999999999", 404, "not_found"),
        }
        for name, (value, status, code) in cases.items():
            with self.subTest(parameter=name):
                message = self.assertApiError(self.get("/crm/leads", self.admin, **{name: value}), status, code)
                self.assertIn(name, message)
        self.assertApiError(self.get("/crm/leads", self.admin, limit="501"), 400, "invalid_parameter")

    # ---------------------------------------------------------------- paging

    def test_keyset_paging_serves_each_lead_once(self):
        """Pages in commit order; leads written in later transactions: TestAcrossTransactions."""
        served, cursor = [], None
        for _page in range(10):
            body = self.get("/crm/leads", self.admin, team_id=self.team.id, limit=3,
                            **({"cursor": cursor} if cursor else {})).json()
            served += [lead["name"] for lead in body["data"]]
            self.assertTrue(body["sync_cursor"])
            cursor = body["next_cursor"]
            if not cursor:
                break
        self.assertEqual(served, [lead.name for lead in self.leads])
        later = self.get("/crm/leads", self.admin, team_id=self.team.id, cursor=body["sync_cursor"]).json()
        self.assertEqual((later["data"], later["next_cursor"]), ([], None), "nothing new since")
        self.assertEqual(later["sync_cursor"], body["sync_cursor"])

    def test_cursors_that_overflow_or_are_not_ours_are_named_400s(self):
        def b64(text):
            return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

        for raw in ("[Infinity,1]", "[1e400,1]", f"[{10**30},1]", f"[1,{10**30}]", f"[1,{2**31}]", "[1.5,1]",
                    f'["{T0.isoformat()}",1]'):
            with self.subTest(cursor=raw):
                message = self.assertApiError(self.get("/crm/leads", self.admin, cursor=b64(raw)),
                                              400, "invalid_parameter")
                self.assertTrue(message.startswith("cursor:"))
        for cursor in ("%%%", "a" * 500, "WzEsMV0" + "=" * 9):
            with self.subTest(cursor=cursor):
                self.assertApiError(self.get("/crm/leads", self.admin, cursor=cursor), 400, "invalid_parameter")

    # ----------------------------------------------------------------- stats

    def _reply_times(self):
        """Customer message, then replies: Alpha after 60 s, Bravo after 300 s, Foxtrot after 100 s."""
        Message = self.env["crm.whatsapp.message"]
        for name, delay in (("API Alpha", 60), ("API Bravo", 300), ("API Foxtrot", 100), ("API Echo", None)):
            lead = self.leads.filtered(lambda lead, name=name: lead.name == name)
            received = T0 + timedelta(minutes=10)
            common = {"account_id": self.account.id, "lead_id": lead.id, "wa_id": "966501119999",
                      "message_type": "text", "body": "x"}
            Message.create([{**common, "direction": "in", "message_date": received},
                            {**common, "direction": "in", "message_date": received + timedelta(seconds=30)}])
            if delay:
                # An automatic message (no author) does not count as the salesperson's answer.
                Message.create([
                    {**common, "direction": "out", "state": "sent", "message_date": received + timedelta(seconds=5)},
                    {**common, "direction": "out", "state": "sent", "user_id": self.salesperson.id,
                     "message_date": received + timedelta(seconds=delay)},
                    {**common, "direction": "out", "state": "sent", "user_id": self.salesperson.id,
                     "message_date": received + timedelta(seconds=delay + 500)},
                ])

    def _expected_stats(self, date_from, date_to):
        """The funnel computed straight from the ORM, the way Odoo's Won and Lost filters count."""
        leads = self.env["crm.lead"].with_context(active_test=False).search(
            [("team_id", "=", self.team.id)]).filtered(lambda lead: date_from <= lead.create_date < date_to)
        won = leads.filtered(lambda lead: lead.active and lead.stage_id.is_won)
        lost = leads.filtered(lambda lead: not lead.active and lead.probability == 0)
        return leads, won, lost

    def test_stats_equal_the_orm(self):
        self._reply_times()
        date_from, date_to = T0, T0 + timedelta(seconds=6)  # excludes Golf, created at T0 + 6 s
        body = self.get("/crm/stats", self.admin, team_id=self.team.id,
                        date_from=iso_z(date_from), date_to=iso_z(date_to)).json()
        leads, won, lost = self._expected_stats(date_from, date_to)
        self.assertEqual(body["leads_created"], len(leads))
        self.assertEqual(body["leads_created"], 6)
        self.assertEqual(body["converted_to_opportunity"], len(leads.filtered(lambda lead: lead.type == "opportunity")))
        self.assertEqual(body["won"], len(won))
        self.assertEqual(body["won"], 2)
        self.assertEqual(body["lost"], len(lost))
        self.assertEqual(body["lost"], 1)
        self.assertEqual(body["win_rate_of_closed"], round(len(won) / (len(won) + len(lost)), 4))
        self.assertEqual(body["win_rate_of_created"], round(len(won) / len(leads), 4))
        self.assertEqual(body["whatsapp_first_response"], {"leads_answered": 3, "median_seconds": 100.0})
        by_stage = {row["stage"]["id"]: row["count"] for row in body["by_stage"]}
        self.assertEqual(by_stage, {stage.id: len(leads.filtered(lambda lead, s=stage: lead.stage_id == s))
                                    for stage in leads.stage_id})
        by_source = {row["source"]: row["count"] for row in body["by_source"]}
        self.assertEqual(by_source, {source.name: len(leads.filtered(lambda lead, s=source: lead.source_id == s))
                                     for source in leads.source_id})

    def test_stats_filters_and_errors(self):
        self._reply_times()
        body = self.get("/crm/stats", self.admin, team_id=self.team.id, source="whatsapp",
                        date_from=str(T0.date()), date_to=str(T0.date() + timedelta(days=1))).json()
        self.assertEqual(body["leads_created"], 4)
        self.assertEqual((body["won"], body["lost"]), (1, 1))
        self.assertEqual(body["whatsapp_first_response"]["median_seconds"], statistics.median([60, 300]))
        as_other = self.get("/crm/stats", self.other_salesperson, team_id=self.team.id,
                            date_from=str(T0.date()), date_to=str(T0.date() + timedelta(days=1))).json()
        self.assertEqual(as_other["leads_created"], 3, "record rules apply to the numbers too")
        self.assertIn("date_from", self.assertApiError(
            self.get("/crm/stats", self.admin), 400, "invalid_parameter"))
        self.assertIn("date_to", self.assertApiError(
            self.get("/crm/stats", self.admin, date_from=str(T0.date() + timedelta(days=1)),
                     date_to=str(T0.date())), 400,
            "invalid_parameter"))

    # --------------------------------------------------------------- openapi

    def test_openapi_document_is_served(self):
        response = self.opener.get(self.base_url() + "/crm/openapi.yaml", timeout=30)
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.headers["Content-Type"].startswith("application/yaml"))
        text = response.text
        self.assertTrue(text.startswith("openapi: 3.1.0"))
        for path in ("/crm/webhook/whatsapp:", "/crm/webhook/meta:", "/crm/leads:", "/crm/stats:",
                     "/crm/sync-meta:", "/crm/sync-bigquery:"):
            self.assertIn(f"\n  {path}\n", text)
