#!/usr/bin/env python3
"""Flush rate of the analytics outbox: funnel events per second delivered to local GA4 and Graph fakes.

Run it with the Python of an Odoo 18 install, on a database where crm_whatsapp_bridge
is installed (it creates its own Lead Ads leads and stages, points the GA4 and Graph
URLs at its fake server for the run, and removes what it created)::

    python bench/analytics_flush.py -c odoo.cfg -d mydb --leads 10000

Three phases, one destination each, so each rate is that destination's alone:
1. GA4 only configured: one write moves every lead to a stage mapped to
   ``qualify_lead`` (N events queued in the user's transaction), then the send
   cron runs until the queue is empty. Every lead is its own GA client, so this is
   N Measurement Protocol requests (one client per request), claimed 100 at a time
   (what a crash can replay to GA4).
2. The reference for 1: the same with claims of 1,000 GA4 events, as before GA4
   claims were cut to 100, with a second stage.
3. Conversions API only configured: the same with a third stage, N Meta events,
   1,000 per request.
The fake server answers at once, so the numbers are the addon's own cost: claim,
payload assembly, HTTP round trips on the loopback and the state writes.
"""

import json
import threading
import time
import uuid

from odoo_bench import database_parser, open_registry, serve_locally
from werkzeug.wrappers import Request, Response

from odoo import SUPERUSER_ID, api

PARAMS = ("ga4_measurement_id", "ga4_api_secret", "ga4_url", "analytics_debug", "meta_dataset_id",
          "meta_capi_token", "meta_test_event_code", "graph_url")
DATASET_ID = "880000000000099"


class FakeEndpoints:
    """GA4's /mp/collect (204) and Graph's /<dataset>/events (events_received), counting events."""

    def __init__(self):
        self.ga4_events = self.ga4_requests = self.meta_events = self.meta_requests = 0
        self._lock = threading.Lock()
        self._server, self.url = serve_locally(self._app)

    @Request.application
    def _app(self, request):
        body = request.get_json(silent=True) or {}
        with self._lock:
            if request.path == "/mp/collect":
                self.ga4_requests += 1
                self.ga4_events += len(body.get("events") or [])
                return Response(status=204)
            self.meta_requests += 1
            self.meta_events += len(body.get("data") or [])
        answer = {"events_received": len(body.get("data") or []), "messages": [], "fbtrace_id": "bench"}
        return Response(json.dumps(answer), content_type="application/json")

    def close(self):
        self._server.shutdown()


def configure(env, fake, ga4=False, meta=False):
    set_param = env["ir.config_parameter"].set_param
    values = {
        "ga4_measurement_id": "G-BENCH" if ga4 else False, "ga4_api_secret": "bench-secret" if ga4 else False,
        "ga4_url": fake.url, "analytics_debug": False, "meta_dataset_id": DATASET_ID if meta else False,
        "meta_capi_token": "bench-token" if meta else False, "meta_test_event_code": False, "graph_url": fake.url,
    }
    for key, value in values.items():
        set_param(f"crm_whatsapp_bridge.{key}", value)


def prepare(registry, fake, count):
    """Stages and ``count`` Lead Ads leads, created while analytics is off (so nothing is queued yet)."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True, "mail_create_nolog": True})
        configure(env, fake)
        stages = env["crm.stage"].create([
            {"name": "Bench qualified", "sequence": 90, "ga4_event": "qualify_lead"},
            {"name": "Bench disqualified", "sequence": 91, "ga4_event": "disqualify_lead"},
            {"name": "Bench working", "sequence": 92, "ga4_event": "working_lead", "meta_event_name": "Working"}])
        source = env.ref("utm.utm_source_facebook")
        run = uuid.uuid4().int % 10**6
        lead_ids = []
        for start in range(0, count, 1000):
            lead_ids += env["crm.lead"].create([{
                "name": f"Analytics bench {i}", "email_from": f"bench{i}@example.com", "phone": f"+1555{i:07d}",
                "source_id": source.id, "meta_leadgen_id": f"9{run:06d}{i:08d}",
            } for i in range(start, min(start + 1000, count))]).ids
        return stages.ids, lead_ids


def move_and_flush(registry, fake, lead_ids, stage_id, **destinations):
    """Move every lead to ``stage_id`` in one transaction, then run the send cron until nothing is ready."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
        configure(env, fake, **destinations)
        start = time.perf_counter()
        env["crm.lead"].browse(lead_ids).write({"stage_id": stage_id})
        cr.commit()
        queue_time = time.perf_counter() - start
    start = time.perf_counter()
    while True:
        with registry.cursor() as cr:
            Event = api.Environment(cr, SUPERUSER_ID, {})["crm.analytics.event"]
            if not Event._ready_count():
                break
            Event._cron_send_queued()
    return queue_time, time.perf_counter() - start


def clean_up(registry, previous, lead_ids, stage_ids):
    """Put the settings back and remove the bench's events, leads and stages."""
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {"active_test": False})
        set_param = env["ir.config_parameter"].set_param
        for key, value in previous.items():
            set_param(f"crm_whatsapp_bridge.{key}", value or False)
        leads = env["crm.lead"].browse(lead_ids)
        leads.analytics_event_ids.unlink()
        leads.unlink()
        env["crm.stage"].browse(stage_ids).unlink()


def main():
    parser = database_parser(__doc__)
    parser.add_argument("--leads", type=int, default=10000)
    args = parser.parse_args()
    registry = open_registry(args, "--db_maxconn=16")
    fake = FakeEndpoints()
    with registry.cursor() as cr:
        get_param = api.Environment(cr, SUPERUSER_ID, {})["ir.config_parameter"].get_param
        previous = {key: get_param(f"crm_whatsapp_bridge.{key}") for key in PARAMS}
    started = time.perf_counter()
    stage_ids, lead_ids = prepare(registry, fake, args.leads)
    print(f"created {len(lead_ids)} Lead Ads leads in {time.perf_counter() - started:.1f} s")
    # Importable only once the registry has set up the addons path.
    from odoo.addons.crm_whatsapp_bridge.models import crm_analytics_event

    try:
        queued, flushed = move_and_flush(registry, fake, lead_ids, stage_ids[0], ga4=True)
        rate = fake.ga4_events / flushed
        print(f"GA4:  {args.leads} stage changes queued in {queued:.2f} s; {fake.ga4_events} events in "
              f"{fake.ga4_requests} requests flushed in {flushed:.1f} s -> {rate:.0f} events/s "
              f"(claims of {crm_analytics_event.CLAIM_SIZES['ga4']})")
        claim_size, crm_analytics_event.CLAIM_SIZES["ga4"] = crm_analytics_event.CLAIM_SIZES["ga4"], 1000
        before = fake.ga4_events
        try:
            queued, flushed = move_and_flush(registry, fake, lead_ids, stage_ids[1], ga4=True)
        finally:
            crm_analytics_event.CLAIM_SIZES["ga4"] = claim_size
        reference = (fake.ga4_events - before) / flushed
        print(f"GA4 reference, claims of 1000: {fake.ga4_events - before} events flushed in {flushed:.1f} s -> "
              f"{reference:.0f} events/s; claims of {claim_size} run at {rate / reference:.2f}x of it")
        queued, flushed = move_and_flush(registry, fake, lead_ids, stage_ids[2], meta=True)
        print(f"Meta: {args.leads} stage changes queued in {queued:.2f} s; {fake.meta_events} events in "
              f"{fake.meta_requests} requests flushed in {flushed:.1f} s -> {fake.meta_events / flushed:.0f} events/s")
    finally:
        fake.close()
        clean_up(registry, previous, lead_ids, stage_ids)

if __name__ == "__main__":
    main()
