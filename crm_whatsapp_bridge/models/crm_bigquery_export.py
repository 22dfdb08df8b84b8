import logging
import time
from datetime import datetime, timedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL
from odoo.tools import config as odoo_config

from ..tools.api_params import MAX_ID
from ..tools.bigquery import (
    JOB_WAIT_SECONDS,
    BigQueryClient,
    BigQueryError,
    BigQueryJobFailed,
    BigQueryJobRunning,
    fetch_access_token,
    job_id,
    ndjson,
    parse_service_account_key,
)
from ..tools.bigquery_tables import TABLES, VIEWS, view_query
from ..tools.cron_budget import CronBudget
from .crm_inbox_event import notify_admins
from .crm_lead_api import install_commit_marker, lead_rows_sql

_logger = logging.getLogger(__name__)

PARAM = "crm_whatsapp_bridge.bigquery_"
# Rows per load job: one job's NDJSON is built in memory, so this bounds the export's memory.
JOB_ROWS = 20000
# A cron call waits at least this long for a load job it sent, even with its budget spent.
MIN_JOB_WAIT_SECONDS = 2
CRON_XMLID = "crm_whatsapp_bridge.ir_cron_bigquery_export"

# Per table: the rows after a keyset position (marker, id) up to another, in key order. The
# marker is the commit-ordered ``cwb_txid`` (see crm_lead_api). Every query selects the row's
# columns, then its keyset position as _key_marker and _key_id.
KEYSET = """
         WHERE (%(alias)s.cwb_txid, %(alias)s.id) > (%(after_marker)s, %(after_id)s)
           AND (%(alias)s.cwb_txid, %(alias)s.id) <= (%(upto_marker)s, %(upto_id)s)
      ORDER BY %(alias)s.cwb_txid, %(alias)s.id
         LIMIT %(limit)s"""
ROW_QUERIES = {
    "crm_stage_history": """
        SELECT v.id AS tracking_id, m.res_id AS lead_id, v.old_value_integer AS old_stage_id,
               v.old_value_char AS old_stage, v.new_value_integer AS new_stage_id,
               v.new_value_char AS new_stage, m.date AS changed_at, v.create_uid AS changed_by_id,
               up.name AS changed_by, v.cwb_txid AS _key_marker, v.id AS _key_id
          FROM mail_tracking_value v
          JOIN mail_message m ON m.id = v.mail_message_id
          JOIN ir_model_fields f ON f.id = v.field_id
     LEFT JOIN res_users u ON u.id = v.create_uid
     LEFT JOIN res_partner up ON up.id = u.partner_id
         WHERE m.model = 'crm.lead' AND f.model = 'crm.lead' AND f.name = 'stage_id'
           AND (v.cwb_txid, v.id) > (%(after_marker)s, %(after_id)s)
           AND (v.cwb_txid, v.id) <= (%(upto_marker)s, %(upto_id)s)
      ORDER BY v.cwb_txid, v.id
         LIMIT %(limit)s""",
    "whatsapp_messages": """
        SELECT w.id AS message_id, w.lead_id, COALESCE(a.display_phone_number, a.name) AS whatsapp_number,
               w.direction, w.message_type, w.state, COALESCE(w.message_date, w.create_date) AS message_at,
               w.status_date AS status_at, w.write_date AS updated_at, w.error_code,
               CASE WHEN %(with_text)s THEN w.body END AS body, w.cwb_txid AS version,
               w.cwb_txid AS _key_marker, w.id AS _key_id
          FROM crm_whatsapp_message w
     LEFT JOIN crm_whatsapp_account a ON a.id = w.account_id
         WHERE (w.cwb_txid, w.id) > (%(after_marker)s, %(after_id)s)
           AND (w.cwb_txid, w.id) <= (%(upto_marker)s, %(upto_id)s)
      ORDER BY w.cwb_txid, w.id
         LIMIT %(limit)s""",
}


class BigInteger(fields.Integer):
    """An integer stored as PostgreSQL bigint: commit markers outgrow ``integer``."""

    _column_type = ("int8", "int8")


def _json_ready(row, exported_at):
    """The row without its keyset columns, stamped with the run's start, with times as
    BigQuery TIMESTAMP text (UTC)."""
    row = dict(row, exported_at=exported_at)
    return {key: (value.isoformat(sep=" ", timespec="microseconds") if isinstance(value, datetime) else value)
            for key, value in row.items() if not key.startswith("_key_")}


class CrmBigqueryWatermark(models.Model):
    """How far each table is exported: the keyset position (commit marker, id) of the last loaded row."""

    _name = "crm.bigquery.watermark"
    _description = "BigQuery Export Watermark"
    _rec_name = "table_name"

    table_name = fields.Char(required=True, readonly=True)
    generation = fields.Integer(default=1, readonly=True,
                                help="Raised by a full re-export, so its load jobs get new ids.")
    last_marker = BigInteger(readonly=True)
    last_id = fields.Integer(readonly=True)
    pending_marker = BigInteger(readonly=True, help="End of the batch being loaded, kept across crashes.")
    pending_id = fields.Integer(readonly=True)
    pending_attempt = fields.Integer(default=1, readonly=True,
                                     help="Raised when BigQuery ran the batch's load job and it failed, "
                                          "so the next try is a new job rather than a duplicate of it.")

    _sql_constraints = [("table_name_unique", "unique(table_name)", "One watermark per table.")]

    @api.model
    def _for_table(self, table):
        return self.search([("table_name", "=", table)]) or self.create({"table_name": table})

    def _position(self):
        return (self.last_marker, self.last_id)

    def _restart(self):
        """Forget what was exported: the next run loads everything again, under new job ids."""
        for watermark in self:
            watermark.write({"generation": watermark.generation + 1, "last_marker": 0, "last_id": 0,
                             "pending_marker": 0, "pending_id": 0, "pending_attempt": 1})


class CrmBigqueryExportRun(models.Model):
    """One export to BigQuery: what it loaded, how it ended."""

    _name = "crm.bigquery.export.run"
    _description = "BigQuery Export Run"
    _inherit = ["mail.thread"]
    _order = "id desc"

    state = fields.Selection([("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")],
                             default="queued", required=True, readonly=True, tracking=True)
    full = fields.Boolean("Full Re-export", readonly=True)
    trigger = fields.Selection([("schedule", "Schedule"), ("api", "API"), ("manual", "Manual")],
                               default="schedule", required=True, readonly=True)
    requested_by = fields.Many2one("res.users", readonly=True, default=lambda self: self.env.user)
    started_at = fields.Datetime(readonly=True)
    finished_at = fields.Datetime(readonly=True)
    rows_leads = fields.Integer("Lead Rows", readonly=True)
    rows_stage_history = fields.Integer("Stage Change Rows", readonly=True)
    rows_messages = fields.Integer("WhatsApp Message Rows", readonly=True)
    job_count = fields.Integer("Load Jobs", readonly=True)
    watermarks_reset = fields.Boolean(readonly=True, help="A full re-export has reset the watermarks "
                                                          "(once, even when the run goes on in later cron calls).")
    error = fields.Text(readonly=True)

    _ROW_FIELDS = {"crm_leads": "rows_leads", "crm_stage_history": "rows_stage_history",
                   "whatsapp_messages": "rows_messages"}

    @api.depends("create_date")
    def _compute_display_name(self):
        for run in self:
            run.display_name = _("BigQuery export #%s", run.id)

    # ------------------------------------------------------------------ configuration

    @api.model
    def _config(self):
        """The export's settings; UserError naming what an admin has to fill in."""
        params = self.env["ir.config_parameter"].sudo()
        config = {key: params.get_param(PARAM + key) for key in ("project", "dataset", "location", "key", "url",
                                                                 "export_text")}
        missing = [label for key, label in (("project", _("project id")), ("dataset", _("dataset")),
                                            ("key", _("service-account key"))) if not config[key]]
        if missing:
            raise UserError(_("BigQuery export is not configured: set the %s in Settings > CRM.",
                              ", ".join(missing)))
        try:
            config["key_info"] = parse_service_account_key(config["key"])
        except ValueError as exc:
            raise UserError(str(exc)) from None
        config["location"] = config["location"] or "EU"
        config["token_url"] = params.get_param("crm_whatsapp_bridge.oauth_token_url") or None
        return config

    @api.model
    def _is_configured(self):
        params = self.env["ir.config_parameter"].sudo()
        return all(params.get_param(PARAM + key) for key in ("project", "dataset", "key"))

    @api.model
    def _client(self, config):
        token = fetch_access_token(config["key_info"], config["token_url"])
        return BigQueryClient(config["project"], config["location"], token, base_url=config["url"])

    @api.model
    def _prepare_dataset(self, client, config):
        """Create the dataset, the tables and the latest-version view when missing; say what was made."""
        _dataset, dataset_created = client.ensure_dataset(config["dataset"])
        created = [name for name, (schema, partition) in TABLES.items()
                   if client.ensure_table(config["dataset"], name, schema, partition)]
        created += [name for name in VIEWS if client.ensure_table(
            config["dataset"], name, view_query=view_query(name, config["project"], config["dataset"]))]
        return dataset_created, created

    # ------------------------------------------------------------------ running

    @api.model
    def _api_start(self, full=False):
        """Queue an export now (POST /crm/sync-bigquery) and wake the cron; return the run."""
        if not isinstance(full, bool):
            raise ValueError("full: must be true or false")
        self._config()  # refuse at once when the export cannot run
        # Runs are admin records; a Sales Manager may ask for one and read it, nothing more.
        run = self.sudo().create({"full": full, "trigger": "api", "requested_by": self.env.uid})
        self.env.ref("crm_whatsapp_bridge.ir_cron_bigquery_export").sudo()._trigger()
        return run.sudo(False)

    def _api_state(self):
        """GET /crm/sync-bigquery/<id>: the run as JSON."""
        self.ensure_one()

        def stamp(value):
            return value.isoformat(timespec="seconds") + "Z" if value else None

        return {"id": self.id, "state": self.state, "full": self.full, "trigger": self.trigger,
                "started_at": stamp(self.started_at), "finished_at": stamp(self.finished_at),
                "rows": {"crm_leads": self.rows_leads, "crm_stage_history": self.rows_stage_history,
                         "whatsapp_messages": self.rows_messages},
                "jobs": self.job_count, "error": self.error or None}

    @api.model
    def _cron_export(self):
        """Scheduled export: go on with the oldest queued run (or start one when none is queued)
        within a :class:`CronBudget`, and tell the cron whether runs are left (waking the next
        poll when they are)."""
        # A cron call is short and a run writes itself after each load job: a run that has not
        # moved for ten minutes lost its worker. What it loaded is committed with its watermark.
        stale = [("state", "=", "running"), ("write_date", "<", fields.Datetime.now() - timedelta(minutes=10))]
        self.search(stale).write({"state": "failed", "finished_at": fields.Datetime.now(),
                                  "error": _("The worker running this export stopped.")})
        run = self.search([("state", "=", "queued")], order="id", limit=1)
        if not run:
            if not self._is_configured():
                return
            run = self.create({"trigger": "schedule"})
        jobs_before = run.job_count
        run._execute(deadline=CronBudget(limit_time_cpu=odoo_config["limit_time_cpu"]).unit_deadline())
        self.env["ir.cron"]._crm_report_progress(
            CRON_XMLID, run.job_count - jobs_before, self.search_count([("state", "=", "queued")]))

    def action_export_now(self):
        """Settings button: export now, in this request."""
        run = self.create({"trigger": "manual"})
        run._execute()
        return run._open_action()

    def _open_action(self):
        return {"type": "ir.actions.act_window", "res_model": self._name, "res_id": self.id,
                "view_mode": "form", "target": "current"}

    def _commit(self):
        # The export commits after each confirmed load job, so a crash keeps what is done.
        self.env.cr.commit()

    def _execute(self, deadline=None):
        """Export every table from its watermark; record the outcome on the run.

        With a ``deadline`` (a time.monotonic() value) no load job starts after it: the run
        goes back to "queued" and the next call continues from the watermarks.
        """
        self.ensure_one()
        self.write({"state": "running", "started_at": self.started_at or fields.Datetime.now(), "error": False})
        self._commit()
        try:
            config = self._config()
            client = self._client(config)
            self._prepare_dataset(client, config)
            if self.full and not self.watermarks_reset:
                self.env["crm.bigquery.watermark"].search([])._restart()
                self.watermarks_reset = True
                self._commit()
            # all() stops at the first table left unfinished by the deadline.
            finished = all(self._export_table(client, config, table, deadline) for table in TABLES)
        except (BigQueryError, UserError) as exc:
            # Everything loaded so far is committed with its watermark; nothing else to undo.
            _logger.warning("BigQuery export %s failed: %s", self.id, exc)
            self.write({"state": "failed", "finished_at": fields.Datetime.now(), "error": str(exc)})
            notify_admins(self.env, [(self, _("The BigQuery export failed: %s", exc))],
                          _("BigQuery export"), _("The BigQuery export failed: %s", exc))
        else:
            if finished:
                self.write({"state": "done", "finished_at": fields.Datetime.now()})
            else:
                self.state = "queued"
        self._commit()

    def _export_table(self, client, config, table, deadline=None):
        """Load the table's rows after its watermark, one job per batch; False when the
        deadline stopped it before the end."""
        watermark = self.env["crm.bigquery.watermark"]._for_table(table)
        schema = TABLES[table][0]
        while True:
            rows = self._rows_to_load(table, watermark, bool(config["export_text"]))
            if not rows:
                return True
            if not watermark.pending_id:
                # Remember the batch's end before loading: a re-run rebuilds exactly this batch,
                # so it gets the same job id and BigQuery refuses to load it twice.
                watermark.write({"pending_marker": rows[-1]["_key_marker"], "pending_id": rows[-1]["_key_id"]})
                self._commit()
            job = job_id(table, watermark.generation, watermark._position(),
                         (watermark.pending_marker, watermark.pending_id), watermark.pending_attempt)
            data = ndjson(_json_ready(row, self.started_at) for row in rows)
            wait = JOB_WAIT_SECONDS if deadline is None else max(deadline - time.monotonic(), MIN_JOB_WAIT_SECONDS)
            try:
                loaded = client.load(config["dataset"], table, schema, job, data, wait_seconds=wait)
            except BigQueryJobRunning:
                if deadline is None:
                    raise
                return False  # the next call sends the same job id: 409, then waits for this job
            except BigQueryJobFailed:
                watermark.pending_attempt += 1
                self._commit()
                raise
            self._advance_watermark(watermark, table, loaded)
            if deadline is not None and time.monotonic() > deadline:
                return False

    def _rows_to_load(self, table, watermark, with_text):
        """The next batch: up to the pending batch's end when one was planned, else up to
        JOB_ROWS rows below the commit horizon (rows of transactions still running wait)."""
        if watermark.pending_id:
            self.env.flush_all()
            upto, limit = (watermark.pending_marker, watermark.pending_id), None
        else:
            # Committing first makes the horizon the new transaction's first query, so its snapshot
            # and its look at the running transactions are taken together (with an older snapshot,
            # transactions of other databases that ended since would hold the export back too).
            self._commit()
            upto, limit = (self.env["crm.lead"]._commit_horizon() - 1, MAX_ID), JOB_ROWS
        after_marker, after_id = watermark._position()
        values = {"after_marker": after_marker, "after_id": after_id, "upto_marker": upto[0], "upto_id": upto[1],
                  "limit": limit}
        if table == "crm_leads":
            # The keyset picks the ids, then the rows are read by id: one transaction (an import)
            # stamps many leads alike, PostgreSQL then estimates a keyset range inside them at one
            # row, and would join the lead's related tables for all the rest of the table.
            ids = [lead_id for (lead_id,) in self.env.execute_query(
                SQL("SELECT l.id FROM crm_lead l %s", SQL(KEYSET, alias=SQL("l"), **values)))]
            rows = self.env.execute_query_dict(SQL("%s WHERE l.id = ANY(%s) ORDER BY l.cwb_txid, l.id",
                                                   lead_rows_sql("en_US"), ids))
            for row in rows:
                row["_key_marker"], row["_key_id"] = row["version"], row["lead_id"]
            return rows
        return self.env.execute_query_dict(SQL(ROW_QUERIES[table], with_text=with_text, **values))

    def _advance_watermark(self, watermark, table, loaded_rows):
        """The job is confirmed done: move the watermark to the batch's end and count its rows."""
        watermark.write({"last_marker": watermark.pending_marker, "last_id": watermark.pending_id,
                         "pending_marker": 0, "pending_id": 0, "pending_attempt": 1})
        field = self._ROW_FIELDS[table]
        self.write({field: self[field] + loaded_rows, "job_count": self.job_count + 1})
        self._commit()


class MailTrackingValue(models.Model):
    _inherit = "mail.tracking.value"

    def _auto_init(self):
        result = super()._auto_init()
        # Stage changes are exported in commit order; tracking values are only ever inserted.
        install_commit_marker(self.env.cr, self._table, updates=False)
        return result
