import json
import logging
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import timedelta

from psycopg2 import errors as pg_errors

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, config

from ..tools.burst_yield import RATIO as BURST_YIELD_RATIO
from ..tools.burst_yield import BurstYield
from ..tools.cron_budget import CronBudget
from ..tools.payload import MALFORMED, PayloadError

_logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_BASE_DELAY = timedelta(minutes=1)
CHUNK_SIZE = 50
CRON_XMLID = "crm_whatsapp_bridge.ir_cron_process_inbox"
# How long the drain may pause for the webhooks of a burst, as a multiple of its last chunk (0: never).
BURST_YIELD_PARAM = "crm_whatsapp_bridge.inbox_burst_yield_ratio"
# Advisory locks of the handshake between the webhooks and a running drain (see
# _trigger_processing): every transaction storing events holds STORING shared until it
# ends; a running drain holds DRAINING from its first chunk until it has seen every
# event stored while it ran.
INBOX_STORING_LOCK = "inbox:storing"
INBOX_DRAINING_LOCK = "inbox:draining"
# Transaction data (cr.precommit.data): whether a drain was running when this transaction stored events.
DRAIN_SEEN_RUNNING = "crm_whatsapp_bridge.inbox_drain_seen_running"


class InboxDeadLetter(Exception):
    """An event that retrying cannot fix (malformed, or no receiving account)."""


class InboxRetryLater(Exception):
    """An event that arrived before what it refers to: try again later, without counting an attempt."""


@dataclass
class InboxItem:
    """One prepared event of a batch (see :meth:`CrmInboxEvent._process`).

    :param event: the ``crm.inbox.event`` record
    :param customer: key grouping the events of one customer (isolation of a failure)
    :param lock_keys: advisory lock keys of the customer (E.164 number, email...)
    :param data: what the handler's apply step needs (parsed message, account, media...)
    :param done_values: set when there is nothing to write (already processed): the
        values written on the event
    """

    event: object
    customer: str = ""
    lock_keys: tuple = ()
    data: dict = dataclass_field(default_factory=dict)
    done_values: dict = None


def notify_admins(env, posts, title, message):
    """Address each ``(record, body)`` post to the active Settings admins, then send them one sticky toast."""
    admins = env.ref("base.group_system").sudo().users.filtered(lambda user: user.active and not user.share)
    if not admins:
        return
    for record, body in posts:
        record.message_post(body=body, partner_ids=admins.partner_id.ids, subtype_xmlid="mail.mt_comment")
    admins._bus_send("simple_notification", {"type": "danger", "sticky": True, "title": title, "message": message})


class CrmInboxEvent(models.Model):
    """Durable inbox of webhook events: stored by the webhook, processed by a cron.

    Rows are written with ``INSERT ... ON CONFLICT DO NOTHING`` (see
    :meth:`_store_events`) so that Meta's redeliveries are no-ops, and claimed with
    ``FOR UPDATE SKIP LOCKED`` so several workers can share the work.
    """

    _name = "crm.inbox.event"
    _description = "Webhook Inbox Event"
    _inherit = ["mail.thread"]
    _order = "id desc"
    _rec_name = "external_id"

    source = fields.Selection([("whatsapp", "WhatsApp")], required=True, readonly=True)
    external_id = fields.Char("External ID", required=True, readonly=True)
    event_type = fields.Selection(
        [("message", "Message"), ("status", "Status"), (MALFORMED, "Malformed")], required=True, readonly=True,
        help="Malformed: something a signed webhook carried that is not a usable event. It is kept "
             "(sanitised where PostgreSQL refuses the original) so that it can be inspected, and goes dead.")
    channel_ref = fields.Char(
        "Received On", readonly=True, index=True,
        help="Meta's id of the receiving channel (the WhatsApp phone number ID).")
    sender = fields.Char("Customer ID", readonly=True, help="The customer's WhatsApp ID.")
    payload = fields.Json("Raw Payload", readonly=True)
    payload_text = fields.Text("Payload", compute="_compute_payload_text")
    state = fields.Selection(
        [("pending", "Pending"), ("done", "Done"), ("dead", "Dead")],
        default="pending", required=True, readonly=True, index=True)
    attempts = fields.Integer(readonly=True)
    next_attempt_at = fields.Datetime("Next Attempt", readonly=True)
    last_error = fields.Text("Error", readonly=True)
    processed_at = fields.Datetime("Processed On", readonly=True)
    whatsapp_account_id = fields.Many2one("crm.whatsapp.account", "WhatsApp Number", readonly=True,
                                          ondelete="set null")
    # Indexed for the ondelete: the inbox keeps every event, deleting a lead must not scan it.
    lead_id = fields.Many2one("crm.lead", "Lead", readonly=True, ondelete="set null", index="btree_not_null")

    _sql_constraints = [
        ("source_external_id_uniq", "unique(source, external_id)",
         "This event is already in the inbox."),
    ]

    def init(self):
        # The cron only ever scans pending rows; keep that scan tiny however big the table grows.
        self.env.cr.execute(SQL(
            "CREATE INDEX IF NOT EXISTS crm_inbox_event_pending_idx "
            "ON crm_inbox_event (id) WHERE state = 'pending'"))

    @api.depends("payload")
    def _compute_payload_text(self):
        for event in self:
            event.payload_text = json.dumps(event.payload, indent=2, ensure_ascii=False) if event.payload else ""

    # ------------------------------------------------------------------
    # Ingestion (webhook side: one INSERT, nothing else)
    # ------------------------------------------------------------------

    @api.model
    def _store_events(self, source, events):
        """Insert parsed webhook events, ignoring the ones already stored.

        :param str source: the ``source`` selection value
        :param list events: :class:`~..tools.payload.InboxEvent` objects
        :return: the number of events that were new
        """
        return len(self._insert_events(source, events))

    @api.model
    def _insert_events(self, source, events):
        """Like :meth:`_store_events`, but return the ids of the rows that were new.

        The events must be storable as they are: the webhook splitters return them so
        (what PostgreSQL could not store or index becomes a malformed event there), and
        other callers pass theirs through :func:`~..tools.payload.storable`.
        """
        if not events:
            return []
        rows = SQL(", ").join(
            SQL("(%s, %s, %s, %s, %s, %s::jsonb, 'pending', 0, %s, %s,"
                " now() at time zone 'UTC', now() at time zone 'UTC')",
                source, event.external_id, event.event_type, event.channel_ref, event.sender,
                json.dumps(event.payload), self.env.uid, self.env.uid)
            for event in events
        )
        # One round trip, as it is most of a webhook's own time. The storing lock comes
        # first: a transaction never waits for it while holding a row another waits on,
        # and a drain seen running (returned with each new row) waits for this one.
        self.env.cr.execute(SQL(
            """SELECT pg_advisory_xact_lock_shared(%s);
               INSERT INTO crm_inbox_event (source, external_id, event_type, channel_ref, sender,
                                            payload, state, attempts, create_uid, write_uid,
                                            create_date, write_date)
               VALUES %s
               ON CONFLICT (source, external_id) DO NOTHING
               RETURNING id, NOT pg_try_advisory_xact_lock_shared(%s)""",
            self._advisory_key(INBOX_STORING_LOCK), rows, self._advisory_key(INBOX_DRAINING_LOCK)))
        new_rows = self.env.cr.fetchall()
        if new_rows:
            seen = self.env.cr.precommit.data
            seen[DRAIN_SEEN_RUNNING] = seen.get(DRAIN_SEEN_RUNNING) or any(row[1] for row in new_rows)
        return [row[0] for row in new_rows]

    def _process_whatsapp_malformed(self):
        """A malformed event goes dead at once, with what the webhook found wrong in it."""
        raise InboxDeadLetter(_("Malformed webhook content: %s", (self.payload or {}).get("error")))

    _process_meta_malformed = _process_whatsapp_malformed

    @api.model
    def _trigger_processing(self, at=None):
        """Wake the inbox cron for the events this transaction stored (at ``at``, or now).

        A wake-up now costs Odoo a new PostgreSQL connection (``ir.cron._notifydb``),
        which would dominate a webhook's own work; so while a drain is running it is
        skipped: that drain sees these events before it ends (:meth:`_ready_after_storing`).
        """
        if at is None and self._drain_running():
            return
        self.env.ref(CRON_XMLID).sudo()._trigger(at)

    @api.model
    def _drain_running(self):
        """Whether a drain is running; if so, it sees what this transaction stores or requeues.

        This transaction holds the storing lock until it ends (taken first by
        :meth:`_insert_events` when it stores), so the drain waits for it before it ends.
        A transaction that stored events already knows the answer.
        """
        seen = self.env.cr.precommit.data.get(DRAIN_SEEN_RUNNING)
        if seen is not None:
            return seen
        self.env.cr.execute(SQL(
            "SELECT pg_advisory_xact_lock_shared(%s), pg_try_advisory_xact_lock_shared(%s)",
            self._advisory_key(INBOX_STORING_LOCK), self._advisory_key(INBOX_DRAINING_LOCK)))
        return not self.env.cr.fetchone()[1]

    @api.model
    def _advisory_key(self, name):
        """The two-integer key of the addon's advisory lock ``name`` (customer locks use the same form)."""
        return SQL("hashtext('crm_whatsapp_bridge'), hashtext(%s)", name)

    @api.model
    def _advisory_lock(self, name, function="pg_advisory_xact_lock"):
        """Call PostgreSQL's advisory-lock ``function`` on the lock ``name``."""
        self.env.cr.execute(SQL("SELECT %s(%s)", SQL.identifier(function), self._advisory_key(name)))

    # ------------------------------------------------------------------
    # Processing (cron side)
    # ------------------------------------------------------------------

    @api.model
    def _cron_process_inbox(self):
        """Drain the inbox chunk by chunk, committing after each chunk, within a :class:`CronBudget`.

        Each chunk runs in its own READ COMMITTED transaction: the per-customer
        advisory lock taken in :meth:`_lock_customer` then guarantees that a worker
        waiting for another one sees the partner and lead it just committed. When
        work remains, the call reports it and triggers the cron, so Odoo calls it
        again at once, in this poll or, once the poll's budget is spent, the next.
        While webhooks keep storing events, it pauses between chunks (:class:`BurstYield`).
        """
        budget = CronBudget(limit_time_cpu=config["limit_time_cpu"])
        burst = BurstYield(self._burst_probe, ratio=self._burst_yield_ratio())
        done = 0
        self.env.cr.commit()
        self._draining(True)
        self.env.cr.commit()  # each chunk must open its own (READ COMMITTED) transaction
        try:
            burst.start()
            while True:
                processed = self._process_chunk(burst.chunk_size(budget.unit(CHUNK_SIZE)), read_committed=True)
                self.env.cr.commit()
                chunk_seconds = budget.done(processed)
                done += processed
                if processed and not budget.exhausted():
                    burst.after_chunk(chunk_seconds, budget.deadline)
                    continue
                remaining = self._ready_after_storing()
                if not remaining or budget.exhausted():
                    break
                self.env.cr.commit()  # what the webhooks stored meanwhile is drained in this call
            # Released while the storing lock is held: a webhook storing from now on wakes the cron itself.
            self._draining(False)
        except Exception:
            # A session lock outlives the transaction: never leave it on the pooled connection.
            self.env.cr.rollback()
            self._draining(False)
            raise
        if remaining and not done:
            # Stored while this call (its budget spent) claimed nothing: their webhooks left the wake-up to it.
            self.env.ref(CRON_XMLID).sudo()._trigger()
        self.env["ir.cron"]._crm_report_progress(CRON_XMLID, done, remaining)

    @api.model
    def _burst_yield_ratio(self):
        value = self.env["ir.config_parameter"].sudo().get_param(BURST_YIELD_PARAM)
        try:
            return float(value) if value else BURST_YIELD_RATIO
        except ValueError:
            _logger.warning("Ignored %s=%r: not a number", BURST_YIELD_PARAM, value)
            return BURST_YIELD_RATIO

    @api.model
    def _burst_probe(self):
        """``(newest event id, seconds the oldest ready event has waited)``, as of now (ends the transaction)."""
        now = fields.Datetime.now()
        self.env.cr.execute(SQL(
            """SELECT (SELECT max(id) FROM crm_inbox_event),
                      (SELECT EXTRACT(EPOCH FROM %s - create_date) FROM crm_inbox_event
                        WHERE %s ORDER BY id LIMIT 1)""",
            now, self._ready_condition(now)))
        newest, waited = self.env.cr.fetchone()
        self.env.cr.commit()  # the next probe and chunk see what was stored meanwhile
        return newest or 0, float(waited or 0)

    @api.model
    def _draining(self, running):
        """Hold (or release) the draining lock on this connection, across the drain's commits."""
        self._advisory_lock(INBOX_DRAINING_LOCK, "pg_advisory_lock" if running else "pg_advisory_unlock")

    @api.model
    def _ready_after_storing(self):
        """The events ready now, counting every one a webhook is storing; must start a transaction.

        The storing lock, taken exclusively, waits for the transactions still storing
        events (they skipped the wake-up, seeing the drain running) and holds back new
        ones until this transaction ends.
        """
        self.env.cr.execute(SQL("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"))
        self._advisory_lock(INBOX_STORING_LOCK)
        return self._count_ready()  # READ COMMITTED: sees what the lock waited for

    @api.model
    def _ready_condition(self, now=None):
        """SQL condition of the events ready to be processed at ``now`` (default: now)."""
        return SQL("state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= %s)",
                   now or fields.Datetime.now())

    @api.model
    def _count_ready(self):
        self.env["crm.inbox.event"].flush_model()
        self.env.cr.execute(SQL("SELECT count(*) FROM crm_inbox_event WHERE %s", self._ready_condition()))
        return self.env.cr.fetchone()[0]

    @api.model
    def _process_chunk(self, limit=CHUNK_SIZE, read_committed=False):
        """Claim up to ``limit`` ready events and process them; return how many were claimed.

        With ``read_committed`` the call must open the transaction (it is the
        cron's job); tests call it inside their own transaction without it.
        """
        if read_committed:
            self.env.cr.execute(SQL("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"))
        events = self._claim_ready(limit)
        events._process()
        return len(events)

    @api.model
    def _claim_ready(self, limit):
        self.env["crm.inbox.event"].flush_model()
        self.env.cr.execute(SQL(
            "SELECT id FROM crm_inbox_event WHERE %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            self._ready_condition(), limit))
        return self.browse(row[0] for row in self.env.cr.fetchall())

    def _process(self):
        """Process claimed events as one batch; a failing event fails alone.

        The steps are small methods, the extension points of the pipeline:

        1. :meth:`_batch_prepare`: for each handler with a batch implementation
           (``_batch_prepare_<source>_<type>``), read what the events need without
           writing anything (payload, receiving number or page, Graph reads, media
           downloads, already-processed checks) into :class:`InboxItem` objects. An
           event failing here is recorded as failed at once, alone.
        2. :meth:`_lock_customers`: one advisory lock per customer key of the chunk,
           in sorted order, so two workers never handle the same customer at once and
           never wait on each other in a cycle.
        3. :meth:`_apply_isolated`: the writes of all prepared items in one savepoint
           (``_batch_apply_<source>_<type>``: contacts, leads, messages, chatter, with
           one ``create([...])`` per model). If that fails, the items are retried per
           customer, then per event, each in its own savepoint: only the failing event
           is recorded as failed.
        4. Events without a batch handler (WhatsApp statuses) run through
           :meth:`_dispatch`, each in its own savepoint.
        5. :meth:`_after_chunk`, once, with the events done (one toast per lead).
        """
        dead = self.browse()
        items = []
        for handler, events in self._group_by_handler().items():
            if self._batch_method("prepare", handler):
                prepared, failed = events._batch_prepare(handler)
                items += prepared
                dead |= failed
            else:
                dead |= events._process_one_by_one()
        items.sort(key=lambda item: item.event.id)  # arrival order
        self._lock_customers(key for item in items for key in item.lock_keys)
        dead |= self._apply_isolated(items)
        # Toasts go out once per lead for the whole chunk, and only for what was kept.
        self._after_chunk(self.filtered(lambda event: event.state == "done"))
        if dead:
            # Admins notified by email get it through the mail queue, like every email of the cron.
            dead.with_context(mail_notify_force_send=False)._notify_admins_dead()

    def _group_by_handler(self):
        """Events by ``(source, event_type)``, in arrival order."""
        return self.sorted("id").grouped(lambda event: (event.source, event.event_type))

    @api.model
    def _batch_method(self, step, handler):
        """The batch implementation ``_batch_<step>_<source>_<type>`` of a handler, or None."""
        return getattr(self, "_batch_{}_{}_{}".format(step, *handler), None)

    def _batch_prepare(self, handler):
        """Prepare these events (all of one handler) for the batch; return ``(items, failed events)``.

        ``_batch_prefetch_<source>_<type>`` (optional, on the whole recordset) reads
        what all events share in a few queries and returns a dict; then
        ``_batch_prepare_<source>_<type>(shared)`` runs on each event and returns its
        :class:`InboxItem`, or raises to fail that event alone.
        """
        prefetch = self._batch_method("prefetch", handler)
        shared = prefetch() if prefetch else {}
        items, dead = [], self.browse()
        for event in self:
            try:
                items.append(getattr(event, "_batch_prepare_{}_{}".format(*handler))(shared))
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the batch
                if event._record_failure(exc):
                    dead |= event
        return items, dead

    def _process_one_by_one(self):
        """Run :meth:`_dispatch` on each event in its own savepoint; return the dead ones."""
        dead = self.browse()
        for event in self.sorted(lambda e: (e.sender or "", e.id)):
            try:
                with self.env.cr.savepoint():
                    event._mark_done(event._dispatch() or {})
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the batch
                if event._record_failure(exc):
                    dead |= event
        return dead

    @api.model
    def _apply_isolated(self, items):
        """Apply ``items`` in one savepoint; on failure retry per customer, then per event.

        :return: the events that went dead
        """
        if not items:
            return self.browse()
        try:
            with self.env.cr.savepoint():
                self._batch_apply(items)
            return self.browse()
        except Exception as exc:  # noqa: BLE001 - isolated below, down to the failing event
            if len(items) == 1:
                event = items[0].event
                return event if event._record_failure(exc) else self.browse()
        customers = {}
        for item in items:
            customers.setdefault(item.customer, []).append(item)
        parts = list(customers.values()) if len(customers) > 1 else [[item] for item in items]
        dead = self.browse()
        for part in parts:
            dead |= self._apply_isolated(part)
        return dead

    @api.model
    def _batch_apply(self, items):
        """Run each handler's ``_batch_apply_<source>_<type>(items)`` and mark the events done.

        A handler gets the items still to do (not those with ``done_values``) and
        returns ``{event id: values to write on the event}``.
        """
        by_handler, results = {}, {}
        for item in items:
            if item.done_values is not None:
                results[item.event.id] = item.done_values
            else:
                by_handler.setdefault((item.event.source, item.event.event_type), []).append(item)
        for handler, handler_items in by_handler.items():
            results.update(self._batch_method("apply", handler)(handler_items))
        # Events with the same values are written together.
        by_values = {}
        for item in items:
            values = results.get(item.event.id) or {}
            key = tuple(sorted(values.items()))
            by_values.setdefault(key, self.browse())
            by_values[key] |= item.event
        for events in by_values.values():
            events._mark_done(results.get(events[:1].id) or {})

    def _mark_done(self, values):
        self.write(dict(values, state="done", processed_at=fields.Datetime.now(),
                        last_error=False, next_attempt_at=False))

    def _after_chunk(self, done_events):
        """Hook run once per chunk with the events processed successfully (e.g. to notify)."""

    def _dispatch(self):
        """Run the one-event handler ``_process_<source>_<type>``; return values to write on the event.

        For event types without a batch implementation (see :meth:`_process`).
        """
        handler = getattr(self, f"_process_{self.source}_{self.event_type}", None)
        if handler is None:
            raise InboxDeadLetter(_("No handler for %(source)s %(type)s events.",
                                    source=self.source, type=self.event_type))
        return handler()

    def _record_failure(self, exc):
        """Store the failure; schedule a retry or mark the event dead. Return True if dead."""
        self.ensure_one()
        attempts = self.attempts + 1
        # Malformed events, unknown numbers and expired/revoked tokens need a person, not a retry.
        permanent = isinstance(exc, (InboxDeadLetter, PayloadError)) or getattr(exc, "needs_admin", False)
        message = str(exc) or type(exc).__name__
        if isinstance(exc, PayloadError):
            message = _("Malformed event: %s", message)
        if isinstance(exc, (pg_errors.DeadlockDetected, pg_errors.SerializationFailure, InboxRetryLater)):
            # A concurrency clash or an early event is not the event's fault: try again, uncounted.
            attempts = self.attempts
        if permanent or attempts >= MAX_ATTEMPTS:
            _logger.warning("Inbox event %s (%s) is dead after %s attempt(s): %s",
                            self.id, self.external_id, attempts, message)
            self.write({"state": "dead", "attempts": attempts, "last_error": message,
                        "next_attempt_at": False})
            return True
        delay = RETRY_BASE_DELAY * (2 ** max(attempts - 1, 0))
        next_attempt = fields.Datetime.now() + delay
        _logger.warning("Inbox event %s (%s) failed (attempt %s), retrying at %s: %s",
                        self.id, self.external_id, attempts, next_attempt, message,
                        exc_info=not isinstance(exc, InboxRetryLater))
        self.write({"attempts": attempts, "last_error": message, "next_attempt_at": next_attempt})
        self._trigger_processing(next_attempt)
        return False

    def _notify_admins_dead(self):
        """Tell the settings admins, in Discuss and with a toast, that events need them."""
        notify_admins(
            self.env,
            [(event, _("This webhook event could not be processed: %s. Fix the cause, then click Requeue.",
                       event.last_error)) for event in self],
            _("WhatsApp inbox"),
            _("%s webhook event(s) could not be processed. See CRM > Configuration > "
              "WhatsApp & Meta > WhatsApp Inbox.", len(self)),
        )

    def action_requeue(self):
        """Put dead (or stuck) events back in the queue for a fresh set of attempts."""
        to_requeue = self.filtered(lambda event: event.state != "done")
        if not to_requeue:
            raise UserError(_("Only events that are not done yet can be requeued."))
        to_requeue.write({"state": "pending", "attempts": 0, "next_attempt_at": False})
        for event in to_requeue:
            event.message_post(body=_("Requeued by %s.", self.env.user.name))
        self._trigger_processing()
        return True

    # ------------------------------------------------------------------
    # Helpers for handlers
    # ------------------------------------------------------------------

    @api.model
    def _lock_customer(self, key):
        """Serialise the work on one customer across workers until this transaction ends."""
        self._lock_customers([key])

    @api.model
    def _lock_customers(self, keys):
        """Like :meth:`_lock_customer` for several keys, in one query, in sorted order (no deadlock)."""
        keys = sorted(set(filter(None, keys)))
        if keys:
            self.env.cr.execute(SQL(
                """SELECT pg_advisory_xact_lock(hashtext('crm_whatsapp_bridge'), hashtext(key))
                     FROM (SELECT unnest(%s::text[]) AS key ORDER BY 1) AS keys""", keys))
