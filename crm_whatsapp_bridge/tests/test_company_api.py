from datetime import datetime, timedelta

from odoo.tests import HttpCase, tagged

from .common import api_keys, read_own_transaction_as_committed
from .test_multicompany import TwoCompaniesMixin

# A window no other lead of a test database is created in: five years from now, at 09:00.
T0 = (datetime.now() + timedelta(days=5 * 365)).replace(hour=9, minute=0, second=0, microsecond=0)


@tagged("post_install", "-at_install")
class TestCompanyApi(TwoCompaniesMixin, HttpCase):
    """/crm/leads and /crm/stats answer with the key owner's companies only; other ids are 404."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_two_companies()
        cls.keys = api_keys(cls.env, cls.salesperson, cls.manager_a, cls.sales_b)
        cls.team_a = cls.env["crm.team"].create({"name": "Team A", "company_id": cls.company_a.id})
        Lead = cls.env["crm.lead"]
        cls.lead_a = Lead.create({"name": "MC lead A", "user_id": cls.salesperson.id, "team_id": cls.team_a.id,
                                  "company_id": cls.company_a.id})
        # Unassigned: visible to every salesperson of B, never to A's.
        cls.lead_b = Lead.create({"name": "MC lead B", "user_id": False, "team_id": cls.team_b.id,
                                  "company_id": cls.company_b.id})
        cls.env.flush_all()
        cls.env.cr.execute("UPDATE crm_lead SET create_date = %s, write_date = %s WHERE id IN %s",
                           (T0, T0, (cls.lead_a.id, cls.lead_b.id)))
        cls.env.invalidate_all()

    def setUp(self):
        super().setUp()
        read_own_transaction_as_committed(self)

    def get(self, user, path):
        return self.url_open(path, headers={"Authorization": f"Bearer {self.keys[user]}"})

    def lead_names(self, user):
        response = self.get(user, f"/crm/leads?updated_after={(T0 - timedelta(seconds=1)).isoformat()}Z&limit=100")
        self.assertEqual(response.status_code, 200, response.text)
        return {lead["name"] for lead in response.json()["data"]}

    def test_leads_are_those_of_the_key_owner_companies(self):
        self.assertEqual(self.lead_names(self.salesperson), {"MC lead A"})
        self.assertEqual(self.lead_names(self.manager_a), {"MC lead A"})
        self.assertEqual(self.lead_names(self.sales_b), {"MC lead B"})

    def test_stats_count_only_the_key_owner_companies(self):
        window = f"date_from={T0.isoformat()}Z&date_to={(T0 + timedelta(hours=1)).isoformat()}Z"
        for user, expected in ((self.manager_a, 1), (self.sales_b, 1)):
            response = self.get(user, f"/crm/stats?{window}")
            self.assertEqual(response.status_code, 200, response.text)
            self.assertEqual(response.json()["leads_created"], expected, user.login)
        by_team = self.get(self.manager_a, f"/crm/stats?{window}&team_id={self.team_a.id}")
        self.assertEqual(by_team.json()["leads_created"], 1)

    def test_ids_of_another_company_answer_like_missing_ones(self):
        other_company = self.get(self.salesperson, f"/crm/leads?team_id={self.team_b.id}")
        missing = self.get(self.salesperson, "/crm/leads?team_id=999999999")
        self.assertEqual((other_company.status_code, missing.status_code), (404, 404))
        self.assertEqual(other_company.json()["error"]["code"], missing.json()["error"]["code"])
        self.assertNotIn("Team B", other_company.text)
        window = f"date_from={T0.isoformat()}Z&date_to={(T0 + timedelta(hours=1)).isoformat()}Z"
        self.assertEqual(self.get(self.sales_b, f"/crm/stats?{window}&team_id={self.team_a.id}").status_code, 404)
        self.assertEqual(self.get(self.sales_b, f"/crm/leads?team_id={self.team_b.id}").status_code, 200)
