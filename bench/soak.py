#!/usr/bin/env python3
"""Soak test: a webhook backlog drained by Odoo in prefork mode, killed twice on the way.

Run it with the Python of an Odoo 18 install, on a database where crm_whatsapp_bridge is
installed (it configures a Meta app secret and a WhatsApp number of its own)::

    python bench/soak.py -c odoo.cfg -d mydb --events 10000

It starts ``odoo --workers=2 --max-cron-threads=1`` with Odoo's default limits
(``limit_time_cpu`` 60 s, ``limit_time_real`` 120 s, also for the cron), then 8 threads
post ``--events`` signed WhatsApp messages plus 20% redeliveries of bodies already sent
(a post that fails, for instance while the server is down, is sent again, as Meta
does). While the cron drains, the whole server (master and workers) is killed with
SIGKILL twice, at a third and at two thirds of the drain, and started again. With
``--servers 2`` two such servers (separate processes, as on two machines) share the
database, the posts alternate between them, and each kill hits one of them in turn. At the
end it prints, per message sent: distinct events, messages recorded exactly once,
duplicated (more than one message record or chatter post), lost, contacts or open
leads duplicated per customer, and every watchdog line of the server's log ("timeout",
"timed out", "time limit"). Only loopback addresses are used.
"""

import concurrent.futures
import hashlib
import hmac
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import requests
from odoo_bench import database_parser, open_registry

from odoo import SUPERUSER_ID, api

SECRET = "soak-secret"
THREADS = 8
REDELIVERY_SHARE = 0.2
WATCHDOG = re.compile(r"timeout|timed out|time limit", re.IGNORECASE)
POST_TIMEOUT = 30
POST_ATTEMPTS = 200  # a post is retried (one second apart) while the server is down


def prepare(registry, phone_number_id):
    """Configure the app secret and a WhatsApp number of the soak's own; return its record id."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        params = env["ir.config_parameter"]
        params.set_param("crm_whatsapp_bridge.meta_app_secret", SECRET)
        params.set_param("crm_whatsapp_bridge.graph_url", "http://127.0.0.1:9")
        return env["crm.whatsapp.account"].create({
            "name": "Soak line", "phone_number_id": phone_number_id, "access_token": "soak"}).id


def bodies(phone_number_id, events, customers, tag):
    """One signed notification per message: ``(wamid, sender, body, signature)``."""
    result = []
    for index in range(events):
        sender = f"1555{tag}{index % customers:05d}"
        wamid = f"wamid.SOAK{tag}{index:07d}"
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550100000", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": f"Soak {sender[-5:]}"}, "wa_id": sender}],
            "messages": [{"from": sender, "id": wamid, "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": f"soak {tag} message {index}"}}],
        }
        body = json.dumps({"object": "whatsapp_business_account",
                           "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        result.append((wamid, sender, body, signature))
    return result


class Server:
    """An Odoo server in prefork mode with default limits, in its own process group."""

    def __init__(self, args, port, log_path):
        self.command = [sys.executable, "-m", "odoo", "-c", args.config, "-d", args.database,
                        f"--db-filter=^{re.escape(args.database)}$", "--workers=2", "--max-cron-threads=1",
                        f"--http-port={port}", f"--gevent-port={port + 1}", f"--logfile={log_path}",
                        "--log-level=info"]
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process = None

    def start(self):
        self.process = subprocess.Popen(self.command, start_new_session=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/web/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError("Odoo did not start within 120 s")

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def post_all(servers, items):
    """Post every item with 8 threads, alternating between the servers, each until it is answered 200."""
    local = threading.local()
    counts = {"posts": 0, "failed_attempts": 0, "given_up": 0}
    lock = threading.Lock()

    def post(numbered):
        number, (_wamid, _sender, body, signature) = numbered
        server = servers[number % len(servers)]
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
        for _attempt in range(POST_ATTEMPTS):
            try:
                response = session.post(server.url + "/crm/webhook/whatsapp", data=body, timeout=POST_TIMEOUT,
                                        headers={"Content-Type": "application/json",
                                                 "X-Hub-Signature-256": signature})
                if response.status_code == 200:
                    with lock:
                        counts["posts"] += 1
                    return
            except requests.RequestException:
                pass
            with lock:
                counts["failed_attempts"] += 1
            time.sleep(1)
        with lock:
            counts["given_up"] += 1

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(post, enumerate(items)))
    return counts


def scalar(cr, query, params=()):
    cr.execute(query, params)
    return cr.fetchone()[0]


def processed(registry, account_id):
    with registry.cursor() as cr:
        return scalar(cr, "SELECT count(*) FROM crm_whatsapp_message WHERE account_id = %s", (account_id,))


def outcome(registry, account_id, phone_number_id, sent):
    """What the database holds for the soak's messages, customers and inbox events."""
    wamids = [item[0] for item in sent]
    senders = sorted({item[1] for item in sent})
    with registry.cursor() as cr:
        cr.execute("""SELECT m.wamid, count(DISTINCT m.id), count(DISTINCT mm.id)
                        FROM crm_whatsapp_message m
                        LEFT JOIN mail_message mm ON mm.model = 'crm.lead' AND mm.res_id = m.lead_id
                                                 AND mm.body ~ (m.body || '([^0-9]|$)')
                       WHERE m.account_id = %s
                       GROUP BY m.wamid""", (account_id,))
        recorded = {wamid: (messages, posts) for wamid, messages, posts in cr.fetchall()}
        cr.execute("""SELECT p.whatsapp_number, count(DISTINCT p.id), count(DISTINCT l.id)
                        FROM res_partner p
                        LEFT JOIN crm_lead l ON l.partner_id = p.id AND l.active AND l.whatsapp_account_id = %s
                       WHERE p.whatsapp_number = ANY(%s)
                       GROUP BY p.whatsapp_number""", (account_id, ["+" + sender for sender in senders]))
        customers = cr.fetchall()
        cr.execute("SELECT state, count(*) FROM crm_inbox_event WHERE channel_ref = %s GROUP BY state",
                   (phone_number_id,))
        inbox = dict(cr.fetchall())
    return {
        "messages sent": len(wamids),
        "distinct inbox events": sum(inbox.values()),
        "inbox states": inbox,
        "recorded exactly once": sum(1 for w in wamids if recorded.get(w) == (1, 1)),
        "duplicated": sum(1 for w in wamids if w in recorded and recorded[w] != (1, 1)),
        "lost": sum(1 for w in wamids if w not in recorded),
        "customers": len(senders),
        "customers with >1 contact": sum(1 for _n, partners, _l in customers if partners > 1),
        "customers with >1 open lead": sum(1 for _n, _p, leads in customers if leads > 1),
        "customers without a contact": len(senders) - len(customers),
    }


def main():
    parser = database_parser(__doc__)
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--port", type=int, default=8369, help="HTTP port of the first server (+10 each)")
    parser.add_argument("--servers", type=int, default=1, choices=(1, 2))
    parser.add_argument("--timeout", type=float, default=3600, help="drain timeout in seconds")
    args = parser.parse_args()
    registry = open_registry(args)
    tag = f"{uuid.uuid4().int % 10**5:05d}"
    phone_number_id = f"55{uuid.uuid4().int % 10**12:012d}"
    account_id = prepare(registry, phone_number_id)
    sent = bodies(phone_number_id, args.events, args.customers, tag)
    redeliveries = random.Random(tag).sample(sent, int(len(sent) * REDELIVERY_SHARE))
    # Redeliveries come after their first delivery, mixed in with later messages.
    traffic = sent[:]
    for position, item in enumerate(redeliveries):
        traffic.insert(min(len(traffic), sent.index(item) + 1 + position % 500), item)

    log_dir = tempfile.mkdtemp(prefix="soak-")
    servers = [Server(args, args.port + 10 * number, os.path.join(log_dir, f"odoo-{number}.log"))
               for number in range(args.servers)]
    for server in servers:
        server.start()
    started = time.monotonic()
    kills = []
    poster = concurrent.futures.ThreadPoolExecutor(1).submit(post_all, servers, traffic)
    try:
        deadline = started + args.timeout
        for number, share in enumerate((1 / 3, 2 / 3)):
            while processed(registry, account_id) < args.events * share and time.monotonic() < deadline:
                time.sleep(1)
            victim = servers[number % len(servers)]
            victim.kill()
            kills.append(round(time.monotonic() - started, 1))
            print(f"killed server {number % len(servers)} at {kills[-1]} s "
                  f"({processed(registry, account_id)} processed)", file=sys.stderr, flush=True)
            victim.start()
        posted = poster.result(timeout=max(deadline - time.monotonic(), 1))
        while processed(registry, account_id) < args.events and time.monotonic() < deadline:
            time.sleep(1)
        drained = round(time.monotonic() - started, 1)
    finally:
        for server in servers:
            server.stop()
    result = outcome(registry, account_id, phone_number_id, sent)
    watchdog = []
    for server in servers:
        with open(server.log_path) as log:
            watchdog += [line.rstrip() for line in log if WATCHDOG.search(line)]
    result.update({"servers": args.servers, "posts (200)": posted["posts"],
                   "failed post attempts": posted["failed_attempts"], "posts given up": posted["given_up"],
                   "kills at s": kills, "drained in s": drained, "messages/s": round(args.events / drained, 1),
                   "watchdog lines": len(watchdog), "logs": log_dir})
    for key, value in result.items():
        print(f"{key:>30}: {value}")
    for line in watchdog[:20]:
        print("  " + line)
    print("RESULT " + json.dumps(result))
    return 0 if not result["lost"] and not result["duplicated"] and not watchdog else 1


if __name__ == "__main__":
    sys.exit(main())
