#!/usr/bin/env python3
"""Latency of ``GET /crm/leads?limit=100`` on a large database, next to Odoo's empty ``/web/health``.

Two steps, against an Odoo that serves a database where crm_whatsapp_bridge is installed:

1. ``--seed N --dsn ...`` inserts N leads (and one contact per ten leads) straight into
   PostgreSQL in one statement each, the way an imported CRM would hold them, unless the
   database already has that many bench leads.
2. It then sends ``--requests`` calls to each route, interleaved one by one so both see the
   same machine: ``/web/health`` and ``/crm/leads?limit=100`` as the API key's user. The
   leads calls walk the table page by page with ``next_cursor`` (an incremental sync),
   starting again from the first page when they reach the end.

Example::

    python3 bench/api_leads.py --url http://localhost:8069 --key "$ODOO_API_KEY" \\
        --seed 100000 --dsn "dbname=bench user=odoo password=odoo host=localhost" --requests 1000

It prints p50/p95/p99 in milliseconds for both routes and their ratio; the last line is
``RESULT {json}``.
"""

import argparse
import json
import statistics
import time

import requests

BENCH_PREFIX = "API bench lead "


def seed(dsn, count):
    """Insert bench leads until the database holds ``count`` of them; return how many it holds."""
    import psycopg2  # only needed for seeding; Odoo's own dependency

    with psycopg2.connect(dsn) as conn, conn.cursor() as cr:
        cr.execute("SELECT count(*) FROM crm_lead WHERE name LIKE %s", [BENCH_PREFIX + "%"])
        existing = cr.fetchone()[0]
        missing = count - existing
        if missing <= 0:
            return existing
        cr.execute("SELECT array_agg(id ORDER BY sequence) FROM crm_stage")
        stage_ids = cr.fetchone()[0]
        cr.execute("SELECT id FROM crm_team ORDER BY id LIMIT 1")
        team_id = cr.fetchone()[0]
        cr.execute("SELECT id FROM res_users WHERE login = 'admin'")
        user_id = cr.fetchone()[0]
        cr.execute("SELECT id FROM res_company ORDER BY id LIMIT 1")
        company_id = cr.fetchone()[0]
        cr.execute("SELECT res_id FROM ir_model_data WHERE module = 'crm_whatsapp_bridge' "
                    "AND name = 'utm_source_whatsapp'")
        source_id = cr.fetchone()[0]
        cr.execute("""
            INSERT INTO res_partner (name, complete_name, email, phone, active, type, company_id,
                                     create_date, write_date)
            SELECT 'API bench contact ' || g, 'API bench contact ' || g, 'contact' || g || '@example.com',
                   '+9665' || lpad(g::text, 8, '0'), true, 'contact', %(company)s, now(), now()
              FROM generate_series(%(start)s, %(stop)s) g
            RETURNING id""", {"company": company_id, "start": existing // 10, "stop": (count - 1) // 10})
        partner_ids = [row[0] for row in cr.fetchall()]
        cr.execute("""
            INSERT INTO crm_lead (name, type, active, stage_id, team_id, user_id, source_id, company_id,
                                  partner_id, email_from, phone, phone_sanitized, probability, expected_revenue,
                                  create_date, write_date, create_uid, write_uid)
            SELECT %(prefix)s || g,
                   CASE WHEN g %% 3 = 0 THEN 'lead' ELSE 'opportunity' END,
                   g %% 10 <> 0,
                   (%(stages)s::int[])[1 + g %% array_length(%(stages)s::int[], 1)],
                   %(team)s, %(user)s, %(source)s, %(company)s,
                   (%(partners)s::int[])[1 + (g - %(start)s) / 10],
                   'lead' || g || '@example.com', '+9665' || lpad(g::text, 8, '0'), '+9665' || lpad(g::text, 8, '0'),
                   CASE WHEN g %% 10 = 0 THEN 0 ELSE 10 END, (g %% 50) * 100,
                   now() - make_interval(secs => %(stop)s - g), now() - make_interval(secs => %(stop)s - g),
                   %(user)s, %(user)s
              FROM generate_series(%(start)s, %(stop)s) g""", {
            "prefix": BENCH_PREFIX, "stages": stage_ids, "team": team_id, "user": user_id,
            "source": source_id, "company": company_id, "partners": partner_ids,
            "start": existing, "stop": count - 1})
        cr.execute("ANALYZE crm_lead; ANALYZE res_partner")
    return count


def percentiles(samples):
    ordered = sorted(samples)

    def at(fraction):
        return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]

    return {"p50": statistics.median(ordered), "p95": at(0.95), "p99": at(0.99), "n": len(ordered)}


def timed_get(session, url, **kwargs):
    start = time.perf_counter()
    response = session.get(url, timeout=60, **kwargs)
    elapsed = (time.perf_counter() - start) * 1000
    response.raise_for_status()
    return elapsed, response


def run(base_url, key, requests_count):
    health, leads = [], []
    rows = 0
    cursor = None
    with requests.Session() as health_session, requests.Session() as api_session:
        api_session.headers["Authorization"] = f"Bearer {key}"
        timed_get(health_session, base_url + "/web/health")  # warm both workers' routing maps
        timed_get(api_session, base_url + "/crm/leads", params={"limit": 1})
        for _ in range(requests_count):
            health.append(timed_get(health_session, base_url + "/web/health")[0])
            params = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            elapsed, response = timed_get(api_session, base_url + "/crm/leads", params=params)
            leads.append(elapsed)
            body = response.json()
            rows += len(body["data"])
            cursor = body["next_cursor"]
    return percentiles(health), percentiles(leads), rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://localhost:8069")
    parser.add_argument("--key", required=True, help="an Odoo API key (a Sales Manager's sees every lead)")
    parser.add_argument("--requests", type=int, default=1000, help="calls to each route")
    parser.add_argument("--seed", type=int, default=0, help="make sure this many bench leads exist")
    parser.add_argument("--dsn", help="PostgreSQL DSN of the Odoo database, for --seed")
    args = parser.parse_args()
    if args.seed:
        if not args.dsn:
            parser.error("--seed needs --dsn")
        started = time.perf_counter()
        print(f"bench leads in the database: {seed(args.dsn, args.seed)} "
              f"(seeding took {time.perf_counter() - started:.1f} s)")
    health, leads, rows = run(args.url.rstrip("/"), args.key, args.requests)
    for name, stats in (("/web/health", health), ("/crm/leads?limit=100", leads)):
        print(f"{name:>22}: p50 {stats['p50']:7.1f} ms  p95 {stats['p95']:7.1f} ms  "
              f"p99 {stats['p99']:7.1f} ms  ({stats['n']} requests)")
    print(f"{rows} leads served; p99 ratio leads / health = {leads['p99'] / health['p99']:.2f}x, "
          f"p50 ratio = {leads['p50'] / health['p50']:.2f}x")
    print("RESULT " + json.dumps({"health": health, "leads": leads, "rows": rows}))


if __name__ == "__main__":
    main()
