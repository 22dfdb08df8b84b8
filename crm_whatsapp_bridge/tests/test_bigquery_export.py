import json
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from odoo import SUPERUSER_ID, api
from odoo.exceptions import UserError
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, HttpCase, TransactionCase, get_db_name, new_test_user, tagged

from ..models import crm_bigquery_export
from ..tools import cron_budget
from ..tools.bigquery_tables import TABLES
from .common import WhatsappTestMixin, api_keys, read_own_transaction_as_committed

T0 = (datetime.now() - timedelta(days=30)).replace(hour=8, minute=0, second=0, microsecond=0)


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
                           "url": cls.bq.url}.items():
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
        read_own_transaction_as_committed(self)
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
        for name, table in (("crm_leads_latest", "crm_leads"), ("crm_leads_unique", "crm_leads"),
                            ("crm_stage_history_unique", "crm_stage_history"),
                            ("whatsapp_messages_unique", "whatsapp_messages")):
            view = self.bq.tables[("crm_export", name)]["resource"]["view"]
            self.assertIn(f"`demo-project.crm_export.{table}`", view["query"])
            self.assertFalse(view["useLegacySql"])
        token_request = self.bq.token_requests[0]
        self.assertEqual(token_request["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer")
        self.assertEqual(token_request["assertion"].count("."), 2, "a signed JWT")
        rows = {row["lead_id"]: row for row in self.lead_rows()}
        self.assertEqual(set(rows), set(self.leads.ids))
        self.assertEqual(rows[self.leads[0].id]["partner_phone"], "+966502220000")
        self.assertEqual(rows[self.leads[0].id]["utm_source"], self.whatsapp.name)
        self.assertEqual(rows[self.leads[0].id]["updated_at"], T0.strftime("%Y-%m-%d %H:%M:%S.%f"))
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
        # New versions in later transactions: TestAcrossTransactions.

    def test_cron_call_stops_after_its_time_and_the_next_call_goes_on(self):
        self.patch(crm_bigquery_export, "JOB_ROWS", 10)
        # The poll's budget is spent: every call does one small unit, here one load job.
        self.patch(cron_budget, "POLL_REAL_SECONDS", 0)
        self.patch(cron_budget, "UNIT_SECONDS", 0)
        cron = self.env.ref("crm_whatsapp_bridge.ir_cron_bigquery_export")
        progress = self.env["ir.cron.progress"].create({"cron_id": cron.id})
        Run = self.env["crm.bigquery.export.run"].with_context(ir_cron_progress_id=progress.id)
        expected_jobs = -(-self.all_lead_count() // 10) + 2  # crm_leads in tens, one job for each other table
        for _call in range(expected_jobs + 1):  # the last call finds nothing left and closes the run
            Run._cron_export()
            runs = Run.search([("trigger", "=", "schedule")])
            self.assertEqual(len(runs), 1, "later calls go on with the same run")
            if runs.state == "done":
                break
            self.assertEqual((runs.state, progress.done, progress.remaining), ("queued", 1, 1),
                             "one load job in the call, and the cron is told a run is left")
        else:
            self.fail("the run did not finish")
        self.assertEqual(progress.remaining, 0)
        self.assertEqual(runs.job_count, expected_jobs)
        self.assertEqual(len(self.bq.rows("crm_leads")), self.all_lead_count(), "every lead once")
        self.assertEqual(runs.rows_leads, self.all_lead_count())

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


@tagged("post_install", "-at_install")
class TestAcrossTransactions(BaseCase):
    """The export and GET /crm/leads over real transactions that commit one after the other.

    A rolled-back test cannot show what a transaction sees of another, so these tests commit:
    they make their own uniquely named leads, remove them afterwards and put back the settings
    and watermarks they changed. Every transaction here sets a lock timeout, so nothing waits
    for ever.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = Registry(get_db_name())
        from .fake_bigquery import FakeBigQueryServer
        cls.bq = FakeBigQueryServer().__enter__()
        cls.addClassCleanup(cls.bq.__exit__, None, None, None)
        cls.key = service_account_key("https://oauth2.example.invalid/token")

    def _env(self, cr):
        # Built without looking the registry up by name (see test_concurrency).
        cr.transaction = api.Transaction(self.registry)
        cr.execute("SET LOCAL lock_timeout = '15s'")
        return api.Environment(cr, SUPERUSER_ID, {"active_test": False})

    @contextmanager
    def transaction(self):
        """A new transaction, committed when the block ends without error."""
        with self.registry.cursor() as cr:
            yield self._env(cr)

    def setUp(self):
        super().setUp()
        self.tag = f"Across {uuid.uuid4().hex[:10]}"
        settings = {f"crm_whatsapp_bridge.bigquery_{key}": value for key, value in {
            "project": "demo-project", "dataset": "crm_export", "location": "EU", "key": self.key,
            "url": self.bq.url, "export_text": False}.items()}
        settings["crm_whatsapp_bridge.oauth_token_url"] = self.bq.token_url
        with self.transaction() as env:
            params = env["ir.config_parameter"]
            saved_settings = {name: params.get_param(name) for name in settings}
            saved_watermarks = env["crm.bigquery.watermark"].search([]).read(
                ["table_name", "generation", "last_marker", "last_id", "pending_marker", "pending_id",
                 "pending_attempt"], load=None)
            self.runs_before = env["crm.bigquery.export.run"].search([], limit=1).id
            for name, value in settings.items():
                params.set_param(name, value)
            stages = env["crm.stage"].search([], order="sequence", limit=2)
            self.stage_ids = stages.ids
            self.account_id = env["crm.whatsapp.account"].create({
                "name": self.tag, "phone_number_id": f"78{uuid.uuid4().int % 10**12:012d}", "access_token": "t"}).id
        self.addCleanup(self._cleanup, saved_settings, saved_watermarks)
        self.bq.reset()

    def _cleanup(self, saved_settings, saved_watermarks):
        with self.transaction() as env:
            for name, value in saved_settings.items():
                env["ir.config_parameter"].set_param(name, value or False)
            env["crm.bigquery.watermark"].search([]).unlink()
            env["crm.bigquery.watermark"].create([{key: value for key, value in values.items() if key != "id"}
                                                  for values in saved_watermarks])
            env["crm.bigquery.export.run"].search([("id", ">", self.runs_before)]).unlink()
            env["crm.whatsapp.message"].search([("account_id", "=", self.account_id)]).unlink()
            env["crm.lead"].search([("name", "=like", f"{self.tag}%")]).unlink()
            env["crm.whatsapp.account"].browse(self.account_id).unlink()

    def create_lead(self, env, name, **values):
        return env["crm.lead"].create({"name": f"{self.tag} {name}", "stage_id": self.stage_ids[0], **values})

    def settle(self):
        """Wait (30 s at most) until readers may read every transaction committed so far.

        Any transaction of this database still running (a cron job of the test server, say)
        holds readers back until it ends, by design; the test waits for that, not longer.
        """
        with self.transaction() as env:
            env.cr.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
            committed_below = env.cr.fetchone()[0]
        deadline = time.monotonic() + 30
        while True:
            with self.transaction() as env:
                if env["crm.lead"]._commit_horizon() >= committed_below:
                    return
            if time.monotonic() > deadline:
                self.fail("another transaction of this database ran for more than 30 s")
            time.sleep(0.1)

    def export(self, full=False, settle=True):
        if settle:
            self.settle()
        with self.transaction() as env:
            run = env["crm.bigquery.export.run"].create({"trigger": "manual", "full": full})
            run._execute()
            self.assertEqual(run.state, "done", run.error)

    def walk(self, cursor=None, settle=True):
        """Page GET /crm/leads from ``cursor`` to its end, one transaction per page as one
        request each: the (id, name) of the leads served and the cursor to sync from later."""
        if settle:
            self.settle()
        served = []
        for _page in range(50):
            with self.transaction() as env:
                params = {"q": self.tag, "limit": "2", **({"cursor": cursor} if cursor else {})}
                body = env["crm.lead"]._api_search_leads(params)
            served += [(lead["id"], lead["name"]) for lead in body["data"]]
            if not body["next_cursor"]:
                return served, body["sync_cursor"]
            cursor = body["next_cursor"]
        self.fail("the walk did not reach the last page")

    def exported(self, table, key="lead_id"):
        ours = self.lead_ids()
        return [row for row in self.bq.rows(table) if row[key] in ours]

    def lead_ids(self):
        with self.transaction() as env:
            return set(env["crm.lead"].search([("name", "=like", f"{self.tag}%")]).ids)

    def test_long_transaction_is_exported_and_paged_after_it_commits(self):
        # The long transaction: it writes a lead, then stays open while others commit and read.
        writer = self.registry.cursor()
        self.addCleanup(writer.close)
        writer_env = self._env(writer)
        early = self.create_lead(writer_env, "early")
        writer_env.flush_all()
        with self.transaction() as env:
            later = self.create_lead(env, "later")
            later_id, later_written = later.id, later.write_date
        self.assertLess(early.write_date, later_written,
                        "the open transaction's lead carries the older write_date, as in production")

        # Export and walk while the writer is open: what is not committed yet is not read, and
        # the readers do not move past it (the lead committed after it waits too).
        self.export(settle=False)
        first_walk, sync_cursor = self.walk(settle=False)
        self.assertFalse(self.exported("crm_leads"))
        self.assertEqual(first_walk, [])

        early.name = f"{self.tag} early v2"
        third = self.create_lead(writer_env, "third")
        writer_env["crm.whatsapp.message"].create({
            "direction": "in", "account_id": self.account_id, "lead_id": early.id, "wa_id": "966500000001",
            "message_type": "text", "body": "hello"})
        writer_env.flush_all()
        early_id, third_id = early.id, third.id
        writer.commit()
        writer.close()

        self.export()
        second_walk, sync_cursor = self.walk(sync_cursor)
        with self.transaction() as env:
            env["crm.lead"].browse(later_id).name = f"{self.tag} later v2"
        self.export()
        third_walk, _sync_cursor = self.walk(sync_cursor)

        expected = {(early_id, f"{self.tag} early v2"), (later_id, f"{self.tag} later"),
                    (third_id, f"{self.tag} third")}
        self.assertEqual(sorted(second_walk), sorted(expected), "every committed lead once")
        self.assertEqual(third_walk, [(later_id, f"{self.tag} later v2")], "then only the new version")
        exported = sorted((row["lead_id"], row["name"]) for row in self.exported("crm_leads"))
        self.assertEqual(exported, sorted(expected | {(later_id, f"{self.tag} later v2")}),
                         "every lead version exported once")
        messages = self.exported("whatsapp_messages")
        self.assertEqual([(row["lead_id"], row["direction"]) for row in messages], [(early_id, "in")])

    def test_any_sequence_of_full_and_incremental_exports_gives_each_fact_once(self):
        with self.transaction() as env:
            first, second = self.create_lead(env, "first"), self.create_lead(env, "second")
            message = env["crm.whatsapp.message"].create({
                "direction": "out", "account_id": self.account_id, "lead_id": first.id, "wa_id": "966500000002",
                "message_type": "text", "body": "hi", "state": "sent"})
            first_id, second_id, message_id = first.id, second.id, message.id
        self.export()
        with self.transaction() as env:
            env["crm.lead"].browse(first_id).stage_id = self.stage_ids[1]
            env["crm.whatsapp.message"].browse(message_id).state = "delivered"
        self.export(full=True)
        with self.transaction() as env:
            env["crm.lead"].browse(second_id).expected_revenue = 500
        self.export()
        self.export(full=True)
        self.export()
        with self.transaction() as env:
            env.cr.execute("""SELECT v.id FROM mail_tracking_value v JOIN mail_message m ON m.id = v.mail_message_id
                               JOIN ir_model_fields f ON f.id = v.field_id
                              WHERE m.model = 'crm.lead' AND m.res_id = %s AND f.name = 'stage_id'""", [first_id])
            stage_changes = [tracking_id for (tracking_id,) in env.cr.fetchall()]
        self.assertEqual(len(stage_changes), 1)

        ours = {first_id, second_id}
        lead_rows = [row for row in self.bq.rows("crm_leads") if row["lead_id"] in ours]
        self.assertGreater(len(lead_rows), 4, "the full re-exports loaded the current versions again")
        versions = sorted((row["lead_id"], row["stage_id"], row["expected_revenue"])
                          for row in self.bq.view_rows("crm_leads_unique") if row["lead_id"] in ours)
        self.assertEqual(versions, sorted([(first_id, self.stage_ids[0], 0.0), (first_id, self.stage_ids[1], 0.0),
                                           (second_id, self.stage_ids[0], 0.0),
                                           (second_id, self.stage_ids[0], 500.0)]), "each version once")
        latest = sorted((row["lead_id"], row["stage_id"], row["expected_revenue"])
                        for row in self.bq.view_rows("crm_leads_latest") if row["lead_id"] in ours)
        self.assertEqual(latest, [(first_id, self.stage_ids[1], 0.0), (second_id, self.stage_ids[0], 500.0)])
        history = [row["tracking_id"] for row in self.bq.view_rows("crm_stage_history_unique")
                   if row["lead_id"] in ours]
        self.assertEqual(history, stage_changes, "each stage change once")
        self.assertGreater(len([row for row in self.bq.rows("crm_stage_history") if row["lead_id"] in ours]), 1)
        states = sorted(row["state"] for row in self.bq.view_rows("whatsapp_messages_unique")
                        if row["message_id"] == message_id)
        self.assertEqual(states, ["delivered", "sent"], "each message version once")
