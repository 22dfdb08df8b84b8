import json
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from odoo.exceptions import UserError
from odoo.tests import HttpCase, TransactionCase, new_test_user, tagged

from ..tools.bigquery_tables import TABLES
from .common import WhatsappTestMixin, api_keys

T0 = datetime(2026, 1, 1, 8, 0, 0)
T1 = datetime(2026, 1, 2, 8, 0, 0)


def service_account_key(token_url):
    """A real (throw-away) service-account key: google-auth signs its JWT with it."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "project_id": "demo-project", "private_key_id": "k1",
                       "private_key": pem, "client_email": "exporter@demo-project.iam.gserviceaccount.com",
                       "token_uri": token_url})


class BigQueryTestMixin(WhatsappTestMixin):
    @classmethod
    def setup_bigquery(cls):
        from .fake_bigquery import FakeBigQueryServer
        cls.bq = FakeBigQueryServer().__enter__()
        cls.addClassCleanup(cls.bq.__exit__, None, None, None)
        cls.setup_whatsapp()
        params = cls.env["ir.config_parameter"].sudo()
        for key, value in {"project": "demo-project", "dataset": "crm_export", "location": "EU",
                           "key": service_account_key("https://oauth2.example.invalid/token"),
                           "url": cls.bq.url, "lag_seconds": "0"}.items():
            params.set_param(f"crm_whatsapp_bridge.bigquery_{key}", value)
        # The key's own token_uri is replaced by this one, as on a server behind a proxy.
        params.set_param("crm_whatsapp_bridge.oauth_token_url", cls.bq.token_url)


@tagged("post_install", "-at_install")
class TestBigQueryExport(BigQueryTestMixin, TransactionCase):
    """The export against a local BigQuery: schema, incremental loads, exactly-once under failures."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bigquery()
        cls.whatsapp = cls.env.ref("crm_whatsapp_bridge.utm_source_whatsapp")
        cls.leads = cls.env["crm.lead"].create([
            {"name": f"BQ lead {i}", "type": "opportunity", "team_id": cls.team.id, "user_id": cls.salesperson.id,
             "source_id": cls.whatsapp.id, "phone": f"+96650222000{i}", "whatsapp_account_id": cls.account.id}
            for i in range(3)])
        cls.env["crm.whatsapp.message"].create([
            {"direction": "in", "account_id": cls.account.id, "lead_id": cls.leads[0].id, "wa_id": "966502220000",
             "message_type": "text", "body": "secret price question"},
            {"direction": "out", "account_id": cls.account.id, "lead_id": cls.leads[0].id, "wa_id": "966502220000",
             "message_type": "text", "body": "our answer", "state": "sent", "user_id": cls.salesperson.id},
        ])
        stages = cls.env["crm.stage"].search([], order="sequence")
        cls.env.cr.precommit.run()  # creation logs first, so the stage change is tracked on its own
        cls.leads[1].stage_id = stages.filtered(lambda stage: stage != cls.leads[1].stage_id)[0]
        cls.env.cr.precommit.run()  # tracking values are written at commit time
        cls.env.flush_all()
        # Everything so far was written "yesterday": later edits must come after it, as they would.
        for table, column in (("crm_lead", "write_date"), ("crm_whatsapp_message", "write_date"),
                              ("mail_tracking_value", "create_date")):
            cls.env.cr.execute(f"UPDATE {table} SET {column} = %s", [T0])  # noqa: S608 (fixed names)
        cls.env.invalidate_all()

    def setUp(self):
        super().setUp()
        # Runs commit after each load job; inside a test they must stay in its transaction.
        self.patch(self.env.cr, "commit", lambda: None)
        self.bq.reset()

    def export(self, **values):
        run = self.env["crm.bigquery.export.run"].create({"trigger": "manual", **values})
        run._execute()
        return run

    def lead_rows(self):
        return [row for row in self.bq.rows("crm_leads") if row["lead_id"] in self.leads.ids]

    def all_lead_count(self):
        return self.env["crm.lead"].with_context(active_test=False).search_count([])

    def test_first_export_creates_schema_and_loads_each_table(self):
        run = self.export()
        self.assertEqual(run.state, "done", run.error)
        self.assertEqual(self.bq.datasets["crm_export"]["location"], "EU")
        for table, (schema, partition) in TABLES.items():
            resource = self.bq.tables[("crm_export", table)]["resource"]
            self.assertEqual(resource["schema"]["fields"], schema)
            self.assertEqual(resource["timePartitioning"], {"type": "DAY", "field": partition})
        view = self.bq.tables[("crm_export", "crm_leads_latest")]["resource"]["view"]
        self.assertIn("`demo-project.crm_export.crm_leads`", view["query"])
        self.assertFalse(view["useLegacySql"])
        token_request = self.bq.token_requests[0]
        self.assertEqual(token_request["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer")
        self.assertEqual(token_request["assertion"].count("."), 2, "a signed JWT")
        rows = {row["lead_id"]: row for row in self.lead_rows()}
        self.assertEqual(set(rows), set(self.leads.ids))
        self.assertEqual(rows[self.leads[0].id]["partner_phone"], "+966502220000")
        self.assertEqual(rows[self.leads[0].id]["utm_source"], self.whatsapp.name)
        self.assertEqual(rows[self.leads[0].id]["updated_at"], "2026-01-01 08:00:00.000000")
        self.assertEqual(len(self.bq.rows("crm_leads")), self.all_lead_count())
        self.assertEqual(run.rows_leads, self.all_lead_count())
        history = [row for row in self.bq.rows("crm_stage_history") if row["lead_id"] == self.leads[1].id]
        self.assertEqual(len(history), 1)
        self.assertEqual(history[0]["new_stage_id"], self.leads[1].stage_id.id)
        messages = [row for row in self.bq.rows("whatsapp_messages") if row["lead_id"] == self.leads[0].id]
        self.assertEqual(sorted(row["direction"] for row in messages), ["in", "out"])
        self.assertTrue(all(row["body"] is None for row in messages), "message text is opt-in")
        self.assertEqual(len(self.bq.uploads()), 3, "one load job per table")

    def test_incremental_export_loads_only_new_versions(self):
        self.export()
        uploads_before = len(self.bq.uploads())
        second = self.export()
        self.assertEqual((second.state, second.rows_leads, second.job_count), ("done", 0, 0))
        self.assertEqual(len(self.bq.uploads()), uploads_before, "nothing new, no load job")
        self.leads[2].expected_revenue = 5000
        self.env.flush_all()
        self.env.cr.execute("UPDATE crm_lead SET write_date = %s WHERE id = %s", [T1, self.leads[2].id])
        third = self.export()
        self.assertEqual((third.rows_leads, third.rows_messages), (1, 0), third.error)
        versions = [row for row in self.lead_rows() if row["lead_id"] == self.leads[2].id]
        self.assertEqual([row["expected_revenue"] for row in versions], [0.0, 5000.0])

    def test_server_errors_are_retried_without_duplicate_rows(self):
        self.bq.fail_next_upload(503, "backendError")
        self.bq.fail_next_upload(503, "backendError", after_loading=True)
        run = self.export()
        self.assertEqual(run.state, "done", run.error)
        lead_uploads = self.bq.uploads()[:3]
        self.assertEqual(len(self.bq.uploads()), 5, "crm_leads took three attempts, the others one")
        self.assertEqual(len(lead_uploads), 3)
        self.assertEqual(len(self.bq.rows("crm_leads")), self.all_lead_count(), "loaded once")
        self.assertEqual(run.rows_leads, self.all_lead_count())

    def test_crash_between_load_and_watermark_does_not_duplicate(self):
        Run = type(self.env["crm.bigquery.export.run"])
        original = Run._advance_watermark

        def crash_once(run, watermark, table, loaded):
            raise RuntimeError("worker killed")

        self.patch(Run, "_advance_watermark", crash_once)
        # Not assertRaises: it would roll back to a savepoint, and a killed worker rolls back nothing
        # that was committed (the batch plan was).
        try:
            self.export()
        except RuntimeError:
            pass
        else:
            self.fail("the export should have crashed")
        watermark = self.env["crm.bigquery.watermark"].search([("table_name", "=", "crm_leads")])
        self.assertTrue(watermark.pending_id, "the batch's end was recorded before loading")
        self.assertFalse(watermark.last_id, "the watermark did not move")
        self.assertEqual(len(self.bq.rows("crm_leads")), self.all_lead_count())
        self.patch(Run, "_advance_watermark", original)
        run = self.export()
        self.assertEqual(run.state, "done", run.error)
        lead_jobs = [job for job in self.bq.jobs if job.startswith("cwb_crm_leads_")]
        self.assertEqual(len(lead_jobs), 1, "the re-run reused the job id and BigQuery refused a second load")
        self.assertEqual(len(self.bq.rows("crm_leads")), self.all_lead_count(), "no duplicate row")
        self.assertEqual(watermark.last_id, watermark.search([("table_name", "=", "crm_leads")]).last_id)
        self.assertTrue(watermark.last_id)
        self.assertFalse(watermark.pending_id)

    def test_failed_load_job_is_retried_under_a_new_id_by_the_next_run(self):
        self.bq.fail_next_job()
        first = self.export()
        self.assertEqual(first.state, "failed")
        self.assertIn("Load job", first.error)
        self.assertFalse(self.bq.rows("crm_leads"))
        second = self.export()
        self.assertEqual(second.state, "done", second.error)
        lead_jobs = sorted(job for job in self.bq.jobs if job.startswith("cwb_crm_leads_"))
        self.assertEqual(len(lead_jobs), 2)
        self.assertTrue(lead_jobs[1].endswith("_r2"), lead_jobs)
        self.assertEqual(len(self.bq.rows("crm_leads")), self.all_lead_count())

    def test_message_text_opt_in_and_full_reexport(self):
        self.export()
        self.env["ir.config_parameter"].sudo().set_param("crm_whatsapp_bridge.bigquery_export_text", "True")
        run = self.export(full=True)
        self.assertEqual(run.rows_leads, self.all_lead_count(), "a full re-export loads everything again")
        bodies = {row["body"] for row in self.bq.rows("whatsapp_messages") if row["lead_id"] == self.leads[0].id}
        self.assertEqual(bodies, {None, "secret price question", "our answer"})
        self.assertEqual(len([job for job in self.bq.jobs if job.startswith("cwb_crm_leads_g2_")]), 1)

    def test_permanent_error_stops_the_run_and_tells_admins(self):
        self.bq.fail_next_upload(400, "invalid")
        run = self.export()
        self.assertEqual(run.state, "failed")
        self.assertIn("invalid", run.error)
        self.assertEqual(len(self.bq.uploads()), 1, "not retried")
        watermark = self.env["crm.bigquery.watermark"].search([("table_name", "=", "crm_leads")])
        self.assertFalse(watermark.last_id)
        notified = run.message_ids.filtered(lambda message: self.admin.partner_id in message.partner_ids)
        self.assertIn("failed", notified.body)

    def test_bad_credentials_fail_without_retry_storm(self):
        broken_pem = "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"
        self.env["ir.config_parameter"].sudo().set_param("crm_whatsapp_bridge.bigquery_key", json.dumps(
            {"client_email": "x@example.com", "private_key": broken_pem}))
        run = self.export()
        self.assertEqual(run.state, "failed")
        self.assertIn("service account", run.error)
        self.assertFalse(self.bq.token_requests)

    def test_settings_refuse_a_key_without_private_key(self):
        with self.assertRaises(UserError):
            self.env["res.config.settings"].create({"crm_bigquery_key": json.dumps({"client_email": "a@b"})})
        with self.assertRaises(UserError):
            self.env["res.config.settings"].create({"crm_bigquery_key": "not json"})

    def test_test_connection_creates_the_dataset_and_reports(self):
        settings = self.env["res.config.settings"].create({})
        action = settings.action_bigquery_test_connection()
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
        self.assertIn("crm_export created", action["params"]["message"])
        self.assertIn("crm_leads_latest", action["params"]["message"])
        again = self.env["res.config.settings"].create({}).action_bigquery_test_connection()
        self.assertIn("All tables and the view exist", again["params"]["message"])


@tagged("post_install", "-at_install")
class TestSyncBigQueryRoute(BigQueryTestMixin, HttpCase):
    """POST /crm/sync-bigquery and GET /crm/sync-bigquery/<id> over HTTP."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_bigquery()
        cls.manager = new_test_user(cls.env, login="bq_manager", groups="sales_team.group_sale_manager")
        cls.keys = api_keys(cls.env, cls.manager, cls.salesperson)

    def call(self, method, path, user=None, **kwargs):
        headers = {"Authorization": f"Bearer {self.keys[user or self.manager]}"}
        return self.opener.request(method, self.base_url() + path, headers=headers, timeout=30, **kwargs)

    def test_trigger_and_state(self):
        cron = self.env.ref("crm_whatsapp_bridge.ir_cron_bigquery_export")
        triggers_before = self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])
        response = self.call("POST", "/crm/sync-bigquery", json={"full": True})
        self.assertEqual(response.status_code, 202, response.text)
        body = response.json()
        self.assertEqual((body["state"], body["full"], body["trigger"]), ("queued", True, "api"))
        run = self.env["crm.bigquery.export.run"].browse(body["id"])
        self.assertEqual(run.requested_by, self.manager)
        self.assertEqual(self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), triggers_before + 1)
        state = self.call("GET", f"/crm/sync-bigquery/{run.id}")
        self.assertEqual(state.status_code, 200)
        self.assertEqual(state.json()["rows"], {"crm_leads": 0, "crm_stage_history": 0, "whatsapp_messages": 0})

    def test_errors(self):
        self.assertEqual(self.call("POST", "/crm/sync-bigquery", user=self.salesperson, json={}).status_code, 403)
        self.assertEqual(self.call("GET", "/crm/sync-bigquery/999999").json()["error"]["code"], "not_found")
        bad = self.call("POST", "/crm/sync-bigquery", json={"full": "yes"})
        self.assertEqual((bad.status_code, bad.json()["error"]["code"]), (400, "invalid_parameter"))
        self.env["ir.config_parameter"].sudo().set_param("crm_whatsapp_bridge.bigquery_project", False)
        unconfigured = self.call("POST", "/crm/sync-bigquery", json={})
        self.assertEqual((unconfigured.status_code, unconfigured.json()["error"]["code"]), (409, "not_configured"))
