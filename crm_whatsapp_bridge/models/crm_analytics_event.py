import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta, timezone

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, config

from ..tools.analytics import (
    CAPI_MAX_AGE_SECONDS,
    CAPI_MAX_EVENTS,
    DEFAULT_GA4_URL,
    GA4_MAX_EVENTS,
    Ga4Client,
    batched,
    capi_body,
    capi_refusal,
    ga4_body,
    group_ga4_requests,
)
from ..tools.cron_budget import CronBudget
from ..tools.graph_client import DEFAULT_GRAPH_URL, GraphClient
from .crm_inbox_event import notify_admins

_logger = logging.getLogger(__name__)

SEND_CRON_XMLID = "crm_whatsapp_bridge.ir_cron_analytics_send"
MAX_ATTEMPTS = 5
RETRY_BASE_DELAY = timedelta(minutes=1)
# GA4 takes one client per request: requests of different clients go out side by side.
GA4_PARALLEL_REQUESTS = 4
# Events claimed (and committed) together. A Meta claim fills one Conversions API request, whose
# replay Meta deduplicates by event_id. GA4 cannot deduplicate: a worker killed after GA4 took a
# claim but before the commit sends it again, so a GA4 claim is one round of parallel requests.
CLAIM_SIZES = {"ga4": GA4_MAX_EVENTS * GA4_PARALLEL_REQUESTS, "meta": CAPI_MAX_EVENTS}
PARAM = "crm_whatsapp_bridge.%s"
# First wait (seconds) of the in-request retries; the cron's own retries take over after them.
HTTP_BACKOFF = 0.5


class CrmAnalyticsEvent(models.Model):
    """Transactional outbox of funnel events for GA4 / server-side GTM and Meta's Conversions API.

    Rows are inserted in the transaction that changes the lead, so a rollback
    leaves nothing to send; the send cron, triggered in the same transaction,
    only sees them after the commit. A unique ``dedup_key`` per lead transition
    makes queueing the same transition twice a no-op.
    """

    _name = "crm.analytics.event"
    _description = "Analytics Event"
    _inherit = ["mail.thread"]
    _order = "id desc"

    destination = fields.Selection(
        [("ga4", "GA4"), ("meta", "Meta Conversions API")], required=True, readonly=True, index=True)
    name = fields.Char("Event", required=True, readonly=True)
    lead_id = fields.Many2one("crm.lead", "Lead", readonly=True, index="btree_not_null", ondelete="set null")
    company_id = fields.Many2one("res.company", readonly=True, index=True, help="The company of the lead.")
    stage_id = fields.Many2one("crm.stage", "Stage", readonly=True, ondelete="set null")
    dedup_key = fields.Char("Deduplication Key", required=True, readonly=True,
                            help="One event per lead transition: a second event with this key is never queued.")
    batch_key = fields.Char("Batch", readonly=True,
                            help="The GA client id (GA4) or the dataset id (Meta) the event is sent for.")
    payload = fields.Json("Payload Data", readonly=True)
    payload_text = fields.Text("Payload", compute="_compute_payload_text",
                               help="What is sent, without the API secret or access token.")
    event_time = fields.Datetime("Event Time", readonly=True)
    state = fields.Selection(
        [("queued", "Queued"), ("sent", "Sent"), ("failed", "Failed"), ("dead", "Dead"),
         ("skipped", "Skipped"), ("refused", "Refused")],
        default="queued", required=True, readonly=True, index=True,
        help="Skipped: not sent on purpose (the reason is in Error). Refused: Meta refused this event for "
             "good (its text is in Error), so it is not retried.")
    attribution_end = fields.Datetime(
        "Attributable Until", readonly=True,
        help="Click-to-WhatsApp events: Meta attributes them to the ad only this long after the click; "
             "an event not sent by then is skipped.")
    attempts = fields.Integer("Failed Attempts", readonly=True)
    next_attempt_at = fields.Datetime("Next Attempt", readonly=True)
    sent_at = fields.Datetime("Sent On", readonly=True)
    debug = fields.Boolean("Debug", readonly=True,
                           help="Sent to GA4's validation server, or to Meta with the test event code.")
    response = fields.Text(readonly=True)
    validation_messages = fields.Json("Validation Messages", readonly=True)
    validation_text = fields.Text("GA4 Validation", compute="_compute_payload_text")
    has_validation_errors = fields.Boolean("Validation Errors", readonly=True)
    error = fields.Text(readonly=True)

    _sql_constraints = [
        ("dedup_key_uniq", "unique(dedup_key)", "This lead transition already has its event."),
    ]

    def init(self):
        # The cron only scans events waiting to be sent; keep that scan small as the log grows.
        self.env.cr.execute(SQL(
            "CREATE INDEX IF NOT EXISTS crm_analytics_event_ready_idx "
            "ON crm_analytics_event (id) WHERE state IN ('queued', 'failed')"))

    @api.depends("payload", "validation_messages")
    def _compute_payload_text(self):
        for event in self:
            event.payload_text = json.dumps(event.payload, indent=2, ensure_ascii=False) if event.payload else ""
            event.validation_text = "\n".join(
                f"{message.get('validationCode')} ({message.get('fieldPath')}): {message.get('description')}"
                for message in event.validation_messages or [])

    # ------------------------------------------------------------------
    # Configuration
    # ------------------------------------------------------------------

    @api.model
    def _analytics_config(self):
        """The GA4 and Conversions API settings, secrets included (never log or store the result)."""
        get = self.env["ir.config_parameter"].sudo().get_param
        config = {
            "measurement_id": (get(PARAM % "ga4_measurement_id") or "").strip(),
            "api_secret": get(PARAM % "ga4_api_secret") or "",
            "ga4_url": get(PARAM % "ga4_url") or DEFAULT_GA4_URL,
            "debug": bool(get(PARAM % "analytics_debug")),
            "dataset_id": (get(PARAM % "meta_dataset_id") or "").strip(),
            "capi_token": get(PARAM % "meta_capi_token") or "",
            "test_event_code": (get(PARAM % "meta_test_event_code") or "").strip(),
            "graph_url": get(PARAM % "graph_url") or DEFAULT_GRAPH_URL,
        }
        config["ga4"] = bool(config["measurement_id"] and config["api_secret"])
        config["meta"] = bool(config["dataset_id"] and config["capi_token"])
        return config

    # ------------------------------------------------------------------
    # Queueing (inside the user's transaction)
    # ------------------------------------------------------------------

    @api.model
    def _enqueue(self, rows):
        """Insert events, skipping those whose ``dedup_key`` is already queued; return the new ids.

        Rows are dicts with ``destination``, ``name``, ``dedup_key`` and optionally
        ``lead_id``, ``stage_id``, ``batch_key``, ``payload``, ``event_time``, ``debug``,
        ``attribution_end``, and ``skip_reason`` (recorded as skipped, never sent).
        """
        if not rows:
            return []
        now = fields.Datetime.now()
        values = SQL(", ").join(
            SQL("(%s, %s, %s, (SELECT company_id FROM crm_lead WHERE id = %s), %s, %s, %s, %s::jsonb, %s, %s,"
                " %s, %s, %s, 0, %s, %s, %s, %s, %s)",
                row["destination"], row["name"], row.get("lead_id"), row.get("lead_id"), row.get("stage_id"),
                row["dedup_key"],
                row.get("batch_key"), json.dumps(row.get("payload")), row.get("event_time") or now,
                bool(row.get("debug")), row.get("attribution_end"),
                "skipped" if row.get("skip_reason") else "queued", row.get("skip_reason"),
                self.env.uid, self.env.uid, now, now, False)
            for row in rows
        )
        self.env.cr.execute(SQL(
            """INSERT INTO crm_analytics_event (destination, name, lead_id, company_id, stage_id, dedup_key,
                                                batch_key, payload, event_time, debug, attribution_end, state,
                                                error, attempts, create_uid, write_uid, create_date, write_date,
                                                has_validation_errors)
               VALUES %s
               ON CONFLICT (dedup_key) DO NOTHING
               RETURNING id, state""", values))
        inserted = self.env.cr.fetchall()
        new_ids = [row[0] for row in inserted]
        if any(state == "queued" for _id, state in inserted):
            # The trigger row commits (or rolls back) with the events: the send starts after the commit.
            self._trigger_send()
        return new_ids

    @api.model
    def _trigger_send(self, at=None):
        self.env.ref(SEND_CRON_XMLID).sudo()._trigger(at)

    # ------------------------------------------------------------------
    # Sending (cron side)
    # ------------------------------------------------------------------

    @api.model
    def _cron_send_queued(self):
        """Send ready events claim by claim within a :class:`CronBudget`, committing after each
        claim; report progress and wake the next poll while events remain."""
        budget = CronBudget(limit_time_cpu=config["limit_time_cpu"])
        sent = 0
        self.env.cr.commit()
        while True:
            claimed = self._send_ready(budget.unit_deadline())
            sent += claimed
            self.env.cr.commit()
            if not claimed or budget.exhausted():
                break
        self.env["ir.cron"]._crm_report_progress(SEND_CRON_XMLID, sent, self._ready_count())

    @api.model
    def _ready_domain(self):
        return SQL("state IN ('queued', 'failed') AND (next_attempt_at IS NULL OR next_attempt_at <= %s)",
                   fields.Datetime.now())

    @api.model
    def _ready_count(self):
        self.flush_model()
        self.env.cr.execute(SQL("SELECT count(*) FROM crm_analytics_event WHERE %s", self._ready_domain()))
        return self.env.cr.fetchone()[0]

    @api.model
    def _send_ready(self, deadline):
        """Claim ready events per destination (skipping rows another worker holds), send them.

        Each destination is claimed on its own (see ``CLAIM_SIZES``). No request starts
        after ``deadline`` (``time.monotonic()``): events left unsent stay queued.
        """
        self.flush_model()
        config = self._analytics_config()
        claimed = 0
        for destination in ("ga4", "meta"):
            self.env.cr.execute(SQL(
                """SELECT id FROM crm_analytics_event WHERE destination = %s AND %s
                    ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED""", destination, self._ready_domain(),
                CLAIM_SIZES[destination]))
            events = self.browse(row[0] for row in self.env.cr.fetchall())
            claimed += len(events)
            if not events:
                continue
            if not config[destination]:
                # Settings were cleared after these were queued: an admin has to act, retrying cannot help.
                events._record_failure(self._not_configured_message(destination), permanent=True)
                continue
            getattr(events, f"_send_{destination}")(config, deadline)
        return claimed

    @api.model
    def _not_configured_message(self, destination):
        if destination == "ga4":
            return _("GA4 is not configured (measurement ID and API secret).")
        return _("The Conversions API is not configured (dataset ID and token).")

    def _send_ga4(self, config, deadline):
        """Send GA4 events: one request per client id and 25 events, several requests in parallel."""
        client = Ga4Client(config["measurement_id"], config["api_secret"], config["ga4_url"], debug=config["debug"],
                           backoff_initial=HTTP_BACKOFF)
        now = time.time()
        requests = []
        for group in group_ga4_requests(self, key=lambda event: event.batch_key):
            first = group[0]
            body = ga4_body(first.payload["client_id"], [e for event in group for e in event.payload["events"]],
                            timestamp=first.event_time.replace(tzinfo=timezone.utc).timestamp()
                            if first.event_time else None,
                            user_properties=first.payload.get("user_properties"), now=now)
            requests.append((self.browse(event.id for event in group), body))

        def send(body):  # runs in a worker thread: HTTP only, no ORM
            if time.monotonic() > deadline:
                return None, None  # not started: its events stay queued for the next call
            try:
                return client.send(body), None
            except Exception as exc:  # noqa: BLE001 - every failure is stored on its events
                return None, exc

        with ThreadPoolExecutor(max_workers=GA4_PARALLEL_REQUESTS) as pool:
            outcomes = list(pool.map(send, [body for _events, body in requests]))
        delivered = self.browse()
        for (events, _body), (messages, exc) in zip(requests, outcomes, strict=True):
            if messages is None and exc is None:
                continue
            if exc is not None:
                events._record_failure(exc, permanent=not getattr(exc, "retryable", False))
            elif config["debug"]:
                events._mark_sent({"debug": True, "validation_messages": messages,
                                   "has_validation_errors": bool(messages),
                                   "response": _("%s validation message(s)", len(messages))})
            else:
                delivered |= events
        # Outside debug mode GA4 answers nothing worth keeping: one write for the whole claim.
        delivered._mark_sent({"response": _("Accepted")})

    @api.model
    def _click_too_old_reason(self):
        return _("The ad click is more than 7 days old: Meta no longer attributes it.")

    def _send_meta(self, config, deadline):
        """Send Conversions API events to their dataset, 1,000 per request."""
        now = fields.Datetime.now()
        unattributable = self.filtered(lambda event: event.attribution_end and event.attribution_end < now)
        unattributable._mark_skipped(self._click_too_old_reason())
        # Meta refuses events older than 7 days: say so instead of failing the whole request.
        limit = now - timedelta(seconds=CAPI_MAX_AGE_SECONDS - 60)
        too_old = (self - unattributable).filtered(lambda event: event.event_time and event.event_time < limit)
        too_old._record_failure(_("Meta accepts events of the last 7 days only."), permanent=True)
        client = GraphClient(config["capi_token"], config["graph_url"], backoff_initial=HTTP_BACKOFF)
        test_event_code = config["test_event_code"] if config["debug"] else None
        by_dataset = {}
        for event in self - unattributable - too_old:
            by_dataset.setdefault(event.batch_key or config["dataset_id"], []).append(event.id)
        for dataset_id, event_ids in by_dataset.items():
            for chunk in batched(event_ids, CAPI_MAX_EVENTS):
                self.browse(chunk)._send_capi_request(client, dataset_id, test_event_code, deadline)

    def _send_capi_request(self, client, dataset_id, test_event_code, deadline):
        """POST these events in one request; when Meta refuses it for its content, find the bad ones.

        Meta processes none of the events of a refused request, so its halves are sent
        on their own, down to single events: one bad event costs about 2 log2(n) more
        requests and never holds back the others. An event Meta refuses for the
        person's region is recorded as refused (not retried).
        """
        if time.monotonic() > deadline:
            return  # not started: the events stay queued for the next call
        body = capi_body([event.payload for event in self], test_event_code)
        try:
            answer = client.send_events(dataset_id, body)
        except Exception as exc:  # noqa: BLE001 - stored on the events, retried by the cron when it can help
            refusal = capi_refusal(exc)
            if refusal and len(self) > 1:
                middle = len(self) // 2
                self[:middle]._send_capi_request(client, dataset_id, test_event_code, deadline)
                self[middle:]._send_capi_request(client, dataset_id, test_event_code, deadline)
            elif refusal == "region":
                self._mark_refused(getattr(exc, "user_message", "") or str(exc))
            else:
                self._record_failure(exc, permanent=not getattr(exc, "retryable", False))
            return
        self._mark_sent({"debug": bool(test_event_code), "response": json.dumps(answer)})

    def _mark_skipped(self, reason):
        if self:
            self.write({"state": "skipped", "error": reason, "next_attempt_at": False})

    def _mark_refused(self, reason):
        if self:
            _logger.info("%s Conversions API event(s) refused by Meta: %s", len(self), reason)
            self.write({"state": "refused", "error": reason, "next_attempt_at": False})

    def _mark_sent(self, values):
        if self:
            self.write(dict(values, state="sent", sent_at=fields.Datetime.now(), error=False,
                            next_attempt_at=False))

    def _record_failure(self, error, permanent=False):
        """Schedule a retry with exponential backoff, or give up (dead) and tell the admins."""
        if not self:
            return
        # Meta's explanation for people, when it gave one, says more than "Invalid parameter".
        message = ": ".join(filter(None, (str(error), getattr(error, "user_message", "")))) or type(error).__name__
        now = fields.Datetime.now()
        dead = self.browse()
        retry_at = []
        for event in self:
            attempts = event.attempts + 1
            if permanent or attempts >= MAX_ATTEMPTS:
                dead |= event
                event.write({"state": "dead", "attempts": attempts, "error": message, "next_attempt_at": False})
                continue
            next_attempt = now + RETRY_BASE_DELAY * 2 ** (attempts - 1)
            retry_at.append(next_attempt)
            event.write({"state": "failed", "attempts": attempts, "error": message, "next_attempt_at": next_attempt})
        _logger.warning("%s analytics event(s) failed (%s dead): %s", len(self), len(dead), message)
        if retry_at:
            self._trigger_send(min(retry_at))
        if dead:
            notify_admins(
                self.env,
                [(dead[0], _("%(count)s analytics event(s) could not be sent: %(error)s. Fix the cause, "
                             "then click Resend.", count=len(dead), error=message))],
                _("Analytics events"),
                _("%s analytics event(s) could not be sent. See CRM > Configuration > WhatsApp & Meta > "
                  "Analytics Events.", len(dead)),
            )

    def action_resend(self):
        """Queue events that were not sent again, with a fresh set of attempts."""
        to_send = self.filtered(lambda event: event.state != "sent")
        if not to_send:
            raise UserError(_("Only events that were not sent can be resent."))
        to_send.write({"state": "queued", "attempts": 0, "next_attempt_at": False, "error": False})
        self._trigger_send()
        return True
