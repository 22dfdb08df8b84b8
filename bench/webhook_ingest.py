#!/usr/bin/env python3
"""Load bench for the WhatsApp webhook of ``crm_whatsapp_bridge``.

For each concurrency level the bench runs, against a running Odoo:

1. a *baseline*: N GET requests to a cheap page (``--baseline-path``);
2. a *webhook* run: N signed POSTs to ``/crm/webhook/whatsapp``, each a distinct
   text message (unique wamid, unique body) from one of M repeating sender numbers;
3. with ``--dsn``: waits until ``crm_inbox_event`` has no pending row and reports
   the drain time (from the last webhook answer until the inbox is empty) and
   messages/s (events drained / seconds from the run's first request until the
   inbox is empty).

A final *redelivery* run at the highest concurrency re-sends bodies that were
already delivered: every answer must be 200 and no new inbox row may appear.
Each request uses a thread pool with one ``requests.Session`` per thread.

Example::

    python3 bench/webhook_ingest.py --secret "$META_APP_SECRET" \\
        --requests 2000 --concurrency 1,4,16 \\
        --dsn "dbname=bench user=odoo password=odoo host=localhost"

The app secret must be the one set in Settings > CRM (``crm_whatsapp_bridge.meta_app_secret``).
Only the given URL is contacted; it must be a loopback address unless ``--allow-remote``.
The last line of output is ``RESULT {json}`` for machine reading.
"""
import argparse
import concurrent.futures
import hashlib
import hmac
import json
import statistics
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

import requests

WEBHOOK_PATH = "/crm/webhook/whatsapp"
REQUEST_TIMEOUT = 30  # seconds, per HTTP request
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def build_body(phone_number_id, sender, wamid, text):
    """Raw JSON bytes of a one-message WhatsApp Cloud API notification."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": f"Bench Customer {sender[-4:]}"}, "wa_id": sender}],
        "messages": [{"from": sender, "id": wamid, "timestamp": str(int(time.time())),
                      "type": "text", "text": {"body": text}}],
    }
    payload = {"object": "whatsapp_business_account",
               "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]}
    return json.dumps(payload, ensure_ascii=False).encode()


def signature(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_requests(args, run_tag, count):
    """``count`` pre-signed (body, headers) pairs, built before the clock starts."""
    result = []
    for i in range(count):
        sender = f"1555020{i % args.distinct_numbers:04d}"
        body = build_body(args.phone_number_id, sender, f"wamid.BENCH{run_tag}N{i:07d}",
                          f"Bench {run_tag} message {i}: please send me a quote")
        headers = {"Content-Type": "application/json",
                   "X-Hub-Signature-256": signature(args.secret, body)}
        result.append((body, headers))
    return result


def run_pass(url, concurrency, bodies=None, count=0):
    """Send ``count`` GETs (``bodies`` is None) or one POST per body; return the measurements."""
    local, sessions, lock = threading.local(), [], threading.Lock()

    def one(item):
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False  # no proxy: traffic goes to the given URL only
            with lock:
                sessions.append(session)
        start = time.perf_counter()
        try:
            if item is None:
                response = session.get(url, timeout=REQUEST_TIMEOUT)
            else:
                response = session.post(url, data=item[0], headers=item[1], timeout=REQUEST_TIMEOUT)
            status, new = response.status_code, _new_rows(response)
        except requests.RequestException:
            status, new = None, None
        return time.perf_counter() - start, status, new

    items = [None] * count if bodies is None else bodies
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, items))
    ended = time.perf_counter()
    elapsed = ended - started
    for session in sessions:
        session.close()
    latencies = sorted(r[0] * 1000 for r in results)
    news = [r[2] for r in results]
    return {
        "concurrency": concurrency, "requests": len(items), "started": started, "ended": ended,
        "errors": sum(1 for r in results if r[1] != 200),
        "req_s": round(len(items) / elapsed, 1) if elapsed else None,
        "p50_ms": _pct(latencies, 50), "p95_ms": _pct(latencies, 95), "p99_ms": _pct(latencies, 99),
        "new_rows": sum(news) if bodies is not None and None not in news else None,
    }


def _new_rows(response):
    """The ``new`` count the webhook answers with, if any."""
    try:
        return int(response.json()["new"])
    except (ValueError, KeyError, TypeError):
        return None


def _pct(sorted_values, p):
    if len(sorted_values) < 2:
        return round(sorted_values[0], 2) if sorted_values else None
    return round(statistics.quantiles(sorted_values, n=100, method="inclusive")[p - 1], 2)


class Inbox:
    """Read-only view of ``crm_inbox_event`` through psycopg2."""

    def __init__(self, dsn):
        try:
            import psycopg2  # optional dependency, only needed with --dsn
        except ImportError:
            sys.exit("--dsn needs psycopg2 (pip install psycopg2-binary)")
        self.conn = psycopg2.connect(dsn)
        self.conn.autocommit = True  # every poll sees the latest commits

    def scalar(self, query):
        with self.conn.cursor() as cr:
            cr.execute(query)
            return cr.fetchone()[0]

    def max_id(self):
        return self.scalar("SELECT coalesce(max(id), 0) FROM crm_inbox_event")

    def wait_empty(self, timeout):
        """Poll until no event is pending; return the time it happened, or None on timeout."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.scalar("SELECT count(*) FROM crm_inbox_event WHERE state='pending'") == 0:
                return time.perf_counter()
            time.sleep(0.1)
        return None


def measure_drain(inbox, row, id_before, timeout):
    emptied = inbox.wait_empty(timeout)
    drained = inbox.scalar(f"SELECT count(*) FROM crm_inbox_event WHERE id > {int(id_before)}")
    row["rows_stored"] = drained
    if emptied is None:
        row["drain_s"] = row["window_s"] = row["msg_s"] = None
        row["drain_timeout"] = True
        return
    window = emptied - row["started"]  # first request until the inbox is empty
    row["drain_s"] = round(max(emptied - row["ended"], 0.0), 2)  # after the last webhook answer
    row["window_s"] = round(window, 2)
    row["msg_s"] = round(drained / window, 1) if drained else 0.0


def print_table(rows):
    header = ("scenario", "conc", "reqs", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms",
              "new", "vs base", "drain s", "msg/s")
    keys = ("scenario", "concurrency", "requests", "errors", "req_s", "p50_ms", "p95_ms", "p99_ms",
            "new_rows", "ratio", "drain_s", "msg_s")
    # "new": inbox rows counted in the database with --dsn, else the "new" the webhook answered
    rows = [dict(r, new_rows=r.get("rows_stored", r.get("new_rows"))) for r in rows]
    lines = [header] + [tuple("-" if r.get(k) is None else str(r[k]) for k in keys) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8069", help="Odoo base URL")
    parser.add_argument("--secret", required=True, help="Meta app secret used to sign the bodies")
    parser.add_argument("--phone-number-id", default="109876543210001")
    parser.add_argument("--requests", type=int, default=2000, help="requests per run")
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated levels")
    parser.add_argument("--distinct-numbers", type=int, default=200, help="sender numbers (<= 10000)")
    parser.add_argument("--dsn", help="PostgreSQL DSN; when set, wait for the inbox to drain")
    parser.add_argument("--timeout", type=float, default=600, help="drain timeout in seconds")
    parser.add_argument("--baseline-path", default="/web/health")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --url")
    args = parser.parse_args()
    levels = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    if args.requests < 1 or not levels or min(levels) < 1 or not 1 <= args.distinct_numbers <= 10000:
        parser.error("--requests, --concurrency and --distinct-numbers (1..10000) must be positive")
    base = args.url.rstrip("/")
    if urlsplit(base).hostname not in LOOPBACK_HOSTS and not args.allow_remote:
        parser.error(f"{base} is not a loopback address (use --allow-remote to insist)")

    inbox = Inbox(args.dsn) if args.dsn else None
    run_tag = uuid.uuid4().hex[:10].upper()  # keeps wamids unique across bench invocations
    rows, baseline_rps, last_bodies = [], {}, None
    for level in levels:
        print(f"concurrency {level}: baseline...", file=sys.stderr, flush=True)
        row = run_pass(base + args.baseline_path, level, count=args.requests)
        rows.append(dict(row, scenario="baseline"))
        baseline_rps[level] = row["req_s"]

        if inbox and inbox.wait_empty(args.timeout) is None:
            sys.exit("inbox still has pending events from before the run; giving up")
        id_before = inbox.max_id() if inbox else 0
        print(f"concurrency {level}: webhook...", file=sys.stderr, flush=True)
        last_bodies = webhook_requests(args, f"{run_tag}C{level}", args.requests)
        row = dict(run_pass(base + WEBHOOK_PATH, level, bodies=last_bodies), scenario="webhook")
        if inbox:
            print(f"concurrency {level}: draining...", file=sys.stderr, flush=True)
            measure_drain(inbox, row, id_before, args.timeout)
        rows.append(row)

    level = levels[-1]
    print(f"concurrency {level}: redelivery...", file=sys.stderr, flush=True)
    id_before = inbox.max_id() if inbox else 0
    row = dict(run_pass(base + WEBHOOK_PATH, level, bodies=last_bodies), scenario="redelivery")
    if inbox:
        row["rows_stored"] = inbox.scalar(f"SELECT count(*) FROM crm_inbox_event WHERE id > {int(id_before)}")
        inbox.conn.close()
    rows.append(row)

    for row in rows:
        row.pop("started"), row.pop("ended")
        if row["scenario"] != "baseline" and baseline_rps.get(row["concurrency"]) and row["req_s"]:
            row["ratio"] = round(row["req_s"] / baseline_rps[row["concurrency"]], 2)
    print_table(rows)
    print("RESULT " + json.dumps({"url": base, "requests": args.requests, "concurrency": levels,
                                  "distinct_numbers": args.distinct_numbers, "runs": rows}))
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
