#!/usr/bin/env python3
"""Cost of the commit-ordered marker (``cwb_txid``) against the ``write_date`` keyset it replaced.

Run it with the Python of an Odoo 18 install, on a database where crm_whatsapp_bridge is
installed::

    python bench/commit_marker.py -c odoo.cfg -d mydb --seed 100000 --dsn "dbname=mydb user=odoo ..."

``--seed`` inserts bench leads first (``api_leads.py``'s seeding). Every measurement runs in a
transaction that is rolled back, so the database is left as it was. The marker and the
reference are measured in alternating rounds in the same run, and the medians compared:

1. ORM writes: ``--writes`` leads written and flushed one at a time (each UPDATE fires the
   marker trigger); reference: the same writes with the trigger disabled.
2. SQL bulk update of 20,000 leads in one statement (the trigger's raw per-row cost);
   reference: the same statement with the trigger disabled.
3. Export read: every lead row read in 20,000-row keyset batches, as the BigQuery export does:
   ``(cwb_txid, id)`` below the commit horizon; reference: ``(write_date, id)`` below
   now - 60 s on a ``(write_date, id)`` index, the former export.
4. API walk: ``--pages`` pages of 100 leads as ``GET /crm/leads`` reads them
   (``_api_search_leads``); reference: the former ORM ``search_fetch`` keyset on
   ``(write_date, id)`` with the same page rendering.
"""

import statistics
import time

from odoo_bench import database_parser, open_registry

from odoo import api
from odoo.tools import SQL

ADMIN_UID = 2
MAX_ID = 2**31 - 1
FORMER_KEYSET = """
         WHERE (l.write_date, l.id) > (%(after_date)s, %(after_id)s)
           AND (l.write_date, l.id) <= (now() at time zone 'UTC' - interval '60 seconds', %(max_id)s)
      ORDER BY l.write_date, l.id
         LIMIT %(limit)s"""


def former_export_batch(env, after_date, after_id):
    """One batch as the former export read it: one query, keyset on (write_date, id)."""
    from odoo.addons.crm_whatsapp_bridge.models.crm_bigquery_export import JOB_ROWS
    from odoo.addons.crm_whatsapp_bridge.models.crm_lead_api import lead_rows_sql
    return env.execute_query_dict(SQL("%s %s", lead_rows_sql("en_US"), SQL(
        FORMER_KEYSET, after_date=after_date, after_id=after_id, max_id=MAX_ID, limit=JOB_ROWS)))


def without_trigger(env):
    env.cr.execute("ALTER TABLE crm_lead DISABLE TRIGGER cwb_commit_marker")


def with_write_date_index(env):
    env.cr.execute("CREATE INDEX bench_crm_lead_write_date_id ON crm_lead (write_date, id)")
    env.cr.execute("ANALYZE crm_lead")


def orm_writes(env, count):
    leads = env["crm.lead"].search([], order="id", limit=count)
    started = time.perf_counter()
    for number, lead in enumerate(leads):
        lead.write({"color": number % 11})
        env.flush_all()
    return time.perf_counter() - started


def bulk_update(env):
    started = time.perf_counter()
    env.cr.execute("UPDATE crm_lead SET color = COALESCE(color, 0) + 1 WHERE id IN "
                   "(SELECT id FROM crm_lead ORDER BY id LIMIT 20000)")
    return time.perf_counter() - started


def export_read_marker(env):
    """The export's own reading (``_rows_to_load``), batch after batch, from a fresh watermark."""
    Run = env["crm.bigquery.export.run"]
    watermark = env["crm.bigquery.watermark"].new({"table_name": "crm_leads"})
    started, rows = time.perf_counter(), 0
    while batch := Run._rows_to_load("crm_leads", watermark, False):
        rows += len(batch)
        watermark.last_marker, watermark.last_id = batch[-1]["_key_marker"], batch[-1]["_key_id"]
    return time.perf_counter() - started, rows


def export_read_write_date(env):
    started, rows, position = time.perf_counter(), 0, ("1970-01-01", 0)
    while True:
        batch = former_export_batch(env, *position)
        if not batch:
            return time.perf_counter() - started, rows
        rows += len(batch)
        position = (batch[-1]["updated_at"], batch[-1]["lead_id"])


def api_walk_marker(env, pages):
    Lead = env["crm.lead"].with_user(ADMIN_UID)
    started, rows, cursor = time.perf_counter(), 0, None
    for _page in range(pages):
        body = Lead._api_search_leads({"limit": "100", **({"cursor": cursor} if cursor else {})})
        rows += len(body["data"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    return time.perf_counter() - started, rows


def api_walk_write_date(env, pages):
    Lead = env["crm.lead"].with_user(ADMIN_UID).with_context(active_test=False)
    started, rows, position = time.perf_counter(), 0, None
    for _page in range(pages):
        domain = []
        if position:
            stamp, last_id = position
            domain = [("write_date", ">=", stamp), "|", ("write_date", ">", stamp), ("id", ">", last_id)]
        leads = Lead.search_fetch(domain, ["write_date"], order="write_date, id", limit=101)
        page = leads[:100]
        rows += len(page._api_lead_dicts())
        if len(leads) <= 100:
            break
        position = (page[-1].write_date, page[-1].id)
    return time.perf_counter() - started, rows


def measure(registry, prepare, run):
    """``run(env)`` in a transaction (after ``prepare(env)``, untimed) that is rolled back."""
    with registry.cursor() as cr:
        env = api.Environment(cr, 1, {})
        if prepare:
            prepare(env)
        try:
            return run(env)
        finally:
            cr.rollback()


def vacuum(registry):
    """VACUUM ANALYZE crm_lead, so the rolled-back updates of a comparison leave no dead rows
    in the indexes the next one reads."""
    with registry.cursor() as cr:
        cr._cnx.autocommit = True
        try:
            cr.execute("VACUUM ANALYZE crm_lead")
        finally:
            cr._cnx.autocommit = False


def compare(registry, name, rounds, marker, reference):
    vacuum(registry)
    marker_runs, reference_runs = [], []
    for _round in range(rounds):
        marker_runs.append(measure(registry, *marker))
        reference_runs.append(measure(registry, *reference))
    seconds = [statistics.median(run if isinstance(run, float) else run[0] for run in runs)
               for runs in (marker_runs, reference_runs)]
    rows = "" if isinstance(marker_runs[0], float) else f" ({marker_runs[0][1]} / {reference_runs[0][1]} rows)"
    print(f"{name:<44} marker {seconds[0] * 1000:9.1f} ms   reference {seconds[1] * 1000:9.1f} ms   "
          f"ratio {seconds[0] / seconds[1]:.3f}x{rows}")


def main():
    parser = database_parser(__doc__)
    parser.add_argument("--seed", type=int, default=0, help="make sure this many bench leads exist")
    parser.add_argument("--dsn", help="PostgreSQL DSN of the database, for --seed")
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.seed:
        from api_leads import seed
        print(f"bench leads in the database: {seed(args.dsn, args.seed)}")
    registry = open_registry(args)
    with registry.cursor() as cr:
        cr.execute("SELECT count(*) FROM crm_lead")
        print(f"leads: {cr.fetchone()[0]}; {args.rounds} rounds each, medians")
    compare(registry, "export read, 20,000-row keyset batches", args.rounds,
            (None, export_read_marker), (with_write_date_index, export_read_write_date))
    compare(registry, f"API walk, {args.pages} pages of 100", args.rounds,
            (None, lambda env: api_walk_marker(env, args.pages)),
            (with_write_date_index, lambda env: api_walk_write_date(env, args.pages)))
    compare(registry, f"ORM write + flush, {args.writes} leads one by one", args.rounds,
            (None, lambda env: orm_writes(env, args.writes)),
            (without_trigger, lambda env: orm_writes(env, args.writes)))
    compare(registry, "SQL UPDATE of 20,000 leads in one statement", args.rounds,
            (None, bulk_update), (without_trigger, bulk_update))


if __name__ == "__main__":
    main()
