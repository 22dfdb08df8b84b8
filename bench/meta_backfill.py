#!/usr/bin/env python3
"""Lead Ads back-fill rate: leads per second created from a local fake Graph API.

Run it with the Python of an Odoo 18 install, on a database where crm_whatsapp_bridge
is installed (it creates its own Meta page and form, points the Graph URL at its fake
server for the run, and removes what it created)::

    python bench/meta_backfill.py -c odoo.cfg -d mydb --leads 5000

The fake server speaks the Graph API's wire format for ``GET /<form-id>/leads``:
100 leads per page (the ``limit`` the addon asks for), ``paging.cursors`` and a
``next`` URL until the last page, and the ``time_created`` filtering. Every lead is
a new person (own email and phone), the worst case: a contact, a lead, a chatter
post and a notification each.

The back-fill runs as the back-fill cron does: read page after page and store the
leads in the inbox (one INSERT and one commit per page), then the inbox cron drains
them in READ COMMITTED chunks of 50. It prints the time of each phase and leads/s
from the first Graph call to the last lead created.

In the same run, ``inbox_drain.py``'s *ceiling* (Odoo's own batched ORM work: a contact,
a lead and a ``message_post`` per message, creates batched by 50) drains ``--ceiling-events``
WhatsApp messages of new customers (default: as many as leads), and the back-fill's rate
is printed against it (``back-fill / ceiling``). The salesperson is the admin user,
notified in Odoo's inbox (``--notification email``: by email, queued).
"""

import importlib
import sys
import time
import types
import uuid
from datetime import timedelta
from pathlib import Path

from inbox_drain import bench_number, run_mode
from odoo_bench import database_parser, drain_inbox, open_registry

from odoo import SUPERUSER_ID, api, fields

GRAPH_URL_PARAM = "crm_whatsapp_bridge.graph_url"
FAKE_GRAPH = Path(__file__).resolve().parent.parent / "crm_whatsapp_bridge" / "tests" / "fake_graph.py"


def load_fake_graph():
    """The tests' fake Graph server, without importing the tests package (that would load Odoo's
    test framework): its folder is registered as a bare package first."""
    package = types.ModuleType("cwb_test_fakes")
    package.__path__ = [str(FAKE_GRAPH.parent)]
    sys.modules.setdefault("cwb_test_fakes", package)
    return importlib.import_module("cwb_test_fakes.fake_graph")


def workload(fake_graph, form_id, count, now):
    """``count`` leads of new people, submitted over the last ``count`` seconds."""
    return [fake_graph.lead_object(
        f"9{form_id[-6:]}{index:08d}", form_id, now - timedelta(seconds=count - index), {
            "full_name": f"Back-fill Person {index}",
            "email": f"backfill.{form_id[-6:]}.{index}@example.com",
            "phone_number": f"+1555{index:07d}",
            "city": "Amman",
            "how_many_users?": "11-50",
        }, platform="ig" if index % 3 == 0 else "fb", campaign_name="Bench campaign")
        for index in range(count)]


def main():
    parser = database_parser(__doc__)
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--ceiling-events", type=int, help="messages for the ceiling run (default: --leads)")
    parser.add_argument("--notification", choices=("inbox", "email"), default="inbox")
    args = parser.parse_args()
    registry = open_registry(args)
    fake_graph = load_fake_graph()
    page_id, form_id = f"66{uuid.uuid4().int % 10**12:012d}", f"67{uuid.uuid4().int % 10**12:012d}"
    server = fake_graph.FakeGraphServer().__enter__()
    now = fields.Datetime.now()
    server.add_form_leads(form_id, workload(fake_graph, form_id, args.leads, now))
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        previous_url = env["ir.config_parameter"].get_param(GRAPH_URL_PARAM)
        env["ir.config_parameter"].set_param(GRAPH_URL_PARAM, server.url)
        salesperson = env.ref("base.user_admin")
        previous_notification = salesperson.notification_type
        salesperson.notification_type = args.notification
        page = env["crm.meta.page"].create({
            "name": "Back-fill bench", "page_id": page_id, "access_token": "bench-token",
            "user_id": env.ref("base.user_admin").id, "team_id": env["crm.team"].search([], limit=1).id})
        form = env["crm.meta.form"].create({"name": "Bench form", "form_id": form_id, "page_id": page.id})
        page_db_id, form_db_id = page.id, form.id
    try:
        start = time.perf_counter()
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            counts = env["crm.meta.form"].browse(form_db_id)._backfill(now - timedelta(days=1), commit=True)
        fetched_at = time.perf_counter()
        processed = drain_inbox(registry, args.chunk)
        end = time.perf_counter()
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"active_test": False})
            created = env["crm.lead"].search_count([("meta_form_id", "=", form_db_id)])
        pages = len([r for r in server.requests if r["path"] == f"/{form_id}/leads"])
        print(f"read + store: {counts['fetched']} leads in {pages} Graph pages, {counts['queued']} new, "
              f"{fetched_at - start:.2f} s -> {counts['fetched'] / (fetched_at - start):.0f} leads/s")
        print(f"processing:   {processed} inbox events in {end - fetched_at:.2f} s -> "
              f"{processed / (end - fetched_at):.1f} leads/s")
        rate = created / (end - start)
        print(f"back-fill:    {created} leads created in {end - start:.2f} s -> {rate:.1f} leads/s", flush=True)
        events = args.ceiling_events or args.leads
        with bench_number(registry, args.notification) as number:
            ceiling = run_mode(registry, "ceiling", number, events, events, args.chunk)
        print(f"   ratio: back-fill / ceiling = {rate / ceiling:.2f}x")
    finally:
        server.__exit__(None, None, None)
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"active_test": False})
            env["ir.config_parameter"].set_param(GRAPH_URL_PARAM, previous_url or False)
            leads = env["crm.lead"].search([("meta_page_id", "=", page_db_id)])
            partners = leads.partner_id
            env["crm.inbox.event"].search([("source", "=", "meta"), ("channel_ref", "=", page_id)]).unlink()
            leads.unlink()
            partners.unlink()
            env["crm.meta.page"].browse(page_db_id).unlink()
            env.ref("base.user_admin").notification_type = previous_notification


if __name__ == "__main__":
    main()
