#!/usr/bin/env python3
"""Sending rate: WhatsApp messages queued through the composer, then sent by the send cron.

Run it with the Python of an Odoo 18 install, on a database where crm_whatsapp_bridge
is installed (it creates its own WhatsApp number, customers and leads, points the
Graph URL at its fake server for the run, and removes what it created)::

    python bench/whatsapp_send.py -c odoo.cfg -d mydb --messages 300 --threads 1,4

Each message is one salesperson action, as in the UI: open the composer on a lead
(inside the 24-hour window), write a text, click Send, commit: this only queues the
message. Then the send cron ("CRM WhatsApp: send queued messages") drains the queue,
call after call as Odoo would, each message with its own commits (``sending`` before
the request, the outcome after). The fake server speaks the Cloud API's wire format
(``POST /<phone-number-id>/messages`` -> a new wamid) and answers at once. The
reference, measured in the same run, is the same number of bare HTTP sends with the
addon's client and no Odoo at all.
"""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from odoo_bench import database_parser, open_registry
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from odoo import SUPERUSER_ID, api, fields

GRAPH_URL_PARAM = "crm_whatsapp_bridge.graph_url"


class FakeCloudApi:
    """Accepts every message with a fresh wamid and counts what it received."""

    def __init__(self):
        self.received = 0
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @Request.application
    def _app(self, request):
        message = request.get_json(silent=True) or {}
        with self._lock:
            self.received += 1
        body = {"messaging_product": "whatsapp",
                "contacts": [{"input": message.get("to"), "wa_id": message.get("to")}],
                "messages": [{"id": f"wamid.BENCH{uuid.uuid4().hex}"}]}
        return Response(json.dumps(body), content_type="application/json")

    def close(self):
        self._server.shutdown()


def prepare(registry, customers):
    """A WhatsApp number, and customers who each wrote a minute ago (so the window is open)."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        salesperson = env.ref("base.user_admin")
        account = env["crm.whatsapp.account"].create({
            "name": "Send bench", "phone_number_id": f"77{uuid.uuid4().int % 10**12:012d}",
            "access_token": "bench-token", "user_id": salesperson.id})
        partners = env["res.partner"].create([
            {"name": f"Send bench {i}", "phone": f"+1555{i:07d}", "whatsapp_number": f"+1555{i:07d}"}
            for i in range(customers)])
        leads = env["crm.lead"].with_context(tracking_disable=True).create([
            {"name": f"Send bench {p.id}", "partner_id": p.id, "user_id": salesperson.id,
             "whatsapp_account_id": account.id} for p in partners])
        env["crm.whatsapp.message"].create([{
            "wamid": f"wamid.BENCHIN{uuid.uuid4().hex}", "direction": "in", "account_id": account.id,
            "lead_id": lead.id, "partner_id": lead.partner_id.id, "wa_id": lead.partner_id.whatsapp_number[1:],
            "body": "hello", "message_date": fields.Datetime.now()} for lead in leads])
        return account.id, salesperson.id, leads.ids


def send_one(registry, user_id, lead_id, index):
    with registry.cursor() as cr:
        env = api.Environment(cr, user_id, {"active_model": "crm.lead", "active_id": lead_id})
        composer = env["crm.whatsapp.composer"].create({"body": f"Bench reply {index}"})
        composer.action_send()


def run(registry, user_id, lead_ids, messages, threads):
    jobs = [(lead_ids[i % len(lead_ids)], i) for i in range(messages)]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(send_one, registry, user_id, lead_id, i) for lead_id, i in jobs]:
            future.result()
    return time.perf_counter() - start


def drain(registry):
    """Call the send cron until nothing is queued; return (seconds, calls)."""
    start, calls = time.perf_counter(), 0
    while True:
        with registry.cursor() as cr:
            Message = api.Environment(cr, SUPERUSER_ID, {})["crm.whatsapp.message"]
            Message._cron_send_outbound()
            calls += 1
            if not Message._queued_count():
                return time.perf_counter() - start, calls


def bare_sends(url, messages):
    """The reference: the same sends with the addon's HTTP client alone."""
    # Importable only once the registry has set up the addons path.
    from odoo.addons.crm_whatsapp_bridge.tools.outbound import CloudApiClient, text_message

    client = CloudApiClient("bench-token", url)
    start = time.perf_counter()
    for index in range(messages):
        client.send_message("1", text_message("15550000000", f"Bench reply {index}"))
    return time.perf_counter() - start


def main():
    parser = database_parser(__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--threads", default="1,4", help="comma-separated numbers of concurrent salespeople")
    args = parser.parse_args()
    registry = open_registry(args, "--db_maxconn=64")
    fake = FakeCloudApi()
    with registry.cursor() as cr:
        params = api.Environment(cr, SUPERUSER_ID, {})["ir.config_parameter"]
        previous_url = params.get_param(GRAPH_URL_PARAM)
        params.set_param(GRAPH_URL_PARAM, fake.url)
    account_id, user_id, lead_ids = prepare(registry, args.customers)
    try:
        for threads in (int(t) for t in args.threads.split(",")):
            before = fake.received
            elapsed = run(registry, user_id, lead_ids, args.messages, threads)
            early = fake.received - before
            print(f"threads={threads:>2}: {args.messages} composer sends queued in {elapsed:.2f} s -> "
                  f"{args.messages / elapsed:.1f} messages/s ({early} requests reached the fake API meanwhile)")
            elapsed, calls = drain(registry)
            sent = fake.received - before
            print(f"            send cron: {sent} messages sent in {elapsed:.2f} s over {calls} call(s) -> "
                  f"{sent / elapsed:.1f} messages/s")
        before = fake.received
        reference = bare_sends(fake.url, args.messages)
        print(f"reference: {fake.received - before} bare HTTP sends in {reference:.2f} s -> "
              f"{args.messages / reference:.1f} messages/s; the send cron runs at "
              f"{(args.messages / elapsed) / (args.messages / reference):.2f}x of it")
    finally:
        fake.close()
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"active_test": False})
            env["ir.config_parameter"].set_param(GRAPH_URL_PARAM, previous_url or False)
            leads = env["crm.lead"].search([("id", "in", lead_ids)])
            partners = leads.partner_id
            env["crm.whatsapp.message"].search([("account_id", "=", account_id)]).unlink()
            leads.unlink()
            partners.unlink()
            env["crm.whatsapp.account"].browse(account_id).unlink()


if __name__ == "__main__":
    main()
