#!/usr/bin/env python3
"""Inbox drain rate: the addon's chunked processing against Odoo's own ceiling (and a naive loop).

Run it with the Python of an Odoo 18 install, on a database where crm_whatsapp_bridge
is installed (it creates its own WhatsApp number and removes what it created)::

    python bench/inbox_drain.py -c odoo.cfg -d mydb --events 200 --senders 200
    python bench/inbox_drain.py -c odoo.cfg -d mydb --events 600 --senders 60 --existing
    python bench/inbox_drain.py -c odoo.cfg -d mydb --events 10000 --senders 10000 --modes addon

Every mode gets the same workload: ``--events`` text messages spread over ``--senders``
customers, stored in the inbox exactly as the webhook stores them. Customers are new,
or with ``--existing`` they already have a contact and an open lead (created before the
clock starts). The salesperson is the admin user, notified in Odoo's inbox (or by email
with ``--notification email``: the emails are then queued, rendered but not sent).

* ceiling: what Odoo itself needs for the same result, done directly with the ORM per
  chunk of ``--chunk`` events: find the contacts and open leads of the chunk, create the
  missing ones with one ``create([...])`` per model (no creation log, no tracking, no
  auto-subscribe notice), ``message_post`` each message authored by the contact with the
  salesperson as recipient (emails queued), mark the events done, commit.
* addon: ``crm.inbox.event._process_chunk`` in READ COMMITTED chunks, as the cron does
  (per-customer advisory locks, savepoint isolation, WhatsApp message records, one commit
  per chunk, one inbox notification per unread burst, one toast per lead and chunk).
* naive: for each event, in its own transaction, the plain ORM way: find or create the
  partner and the open lead, record the message, ``message_post`` it with the
  salesperson as recipient, mark the event done, commit.

It prints messages/s for each mode, ``addon / ceiling`` (and ``addon / naive``), and the
growth of the process's resident memory during each drain (at its end and at its peak). On a shared machine, use
``--rounds N``: the modes alternate N times and the median of the N ratios is printed.
"""

import contextlib
import importlib
import statistics
import time
import uuid

from markupsafe import escape
from odoo_bench import database_parser, drain_inbox, open_registry, reset_peak_rss, rss_mb

from odoo import SUPERUSER_ID, api


def payload_module():
    """The addon's payload parser (importable only once Odoo knows its addons path)."""
    return importlib.import_module("odoo.addons.crm_whatsapp_bridge.tools.payload")


def sender_numbers(senders, tag):
    """Valid Saudi mobile numbers (wa_id form), distinct per mode ``tag`` (two digits)."""
    return [f"9665{tag}{index:06d}" for index in range(senders)]


def workload(events, senders, tag):
    numbers = sender_numbers(senders, tag)
    messages = [{
        "from": numbers[index % senders], "id": f"wamid.BENCH{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())), "type": "text", "text": {"body": f"bench message {index}"},
    } for index in range(events)]
    return messages


def store(env, phone_number_id, messages):
    notification = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "metadata": {"phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": f"Bench {m['from']}"}, "wa_id": m["from"]} for m in messages],
            "messages": messages}}]}]}
    return env["crm.inbox.event"]._store_events("whatsapp", payload_module().split_notification(notification))



def create_existing_customers(env, account, senders, tag):
    """A contact and an open lead for each sender, as if they had written before."""
    partners = env["res.partner"].create([
        {"name": f"Bench {sender}", "phone": "+" + sender, "whatsapp_number": "+" + sender}
        for sender in sender_numbers(senders, tag)])
    env["crm.lead"].create([{
        "name": f"WhatsApp: {partner.name}", "partner_id": partner.id, "user_id": account.user_id.id,
        "team_id": account.team_id.id, "whatsapp_account_id": account.id,
        "source_id": env.ref("crm_whatsapp_bridge.utm_source_whatsapp").id} for partner in partners])


def ceiling_drain(registry, phone_number_id, chunk):
    """Odoo's own cost for the same result: batched lookups and creates, one message_post per message."""
    done = 0
    quiet = {"mail_create_nolog": True, "mail_notrack": True, "mail_auto_subscribe_no_notify": True,
             "mail_notify_force_send": False}
    while True:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, quiet)
            events = env["crm.inbox.event"].search(
                [("state", "=", "pending"), ("channel_ref", "=", phone_number_id)], order="id", limit=chunk)
            if not events:
                return done
            account = env["crm.whatsapp.account"].search([("phone_number_id", "=", phone_number_id)])
            messages = [payload_module().parse_message(event.payload) for event in events]
            numbers = {"+" + message.wa_id: message.profile_name for message in messages}
            partners = {p.phone_sanitized: p for p in env["res.partner"].search(
                [("phone_sanitized", "in", list(numbers))])}
            missing = [number for number in numbers if number not in partners]
            for partner in env["res.partner"].create([{"name": numbers[n], "phone": n} for n in missing]):
                partners[partner.phone] = partner
            leads = {lead.partner_id: lead for lead in env["crm.lead"].search([
                ("partner_id", "in", [p.id for p in partners.values()]), ("stage_id.is_won", "=", False)])}
            missing = [p for p in partners.values() if p not in leads]
            for lead in env["crm.lead"].create([{
                    "name": f"WhatsApp: {partner.name}", "partner_id": partner.id,
                    "user_id": account.user_id.id, "team_id": account.team_id.id,
                    "whatsapp_account_id": account.id,
                    "source_id": env.ref("crm_whatsapp_bridge.utm_source_whatsapp").id} for partner in missing]):
                leads[lead.partner_id] = lead
            for message in messages:
                partner = partners["+" + message.wa_id]
                leads[partner].message_post(
                    body=escape(message.body), author_id=partner.id, message_type="comment",
                    subtype_xmlid="mail.mt_comment", partner_ids=account.user_id.partner_id.ids)
            events.write({"state": "done"})
            done += len(events)


def naive_drain(registry, phone_number_id):
    """The straightforward loop: one event, one transaction, default chatter notification."""
    done = 0
    while True:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            event = env["crm.inbox.event"].search(
                [("state", "=", "pending"), ("channel_ref", "=", phone_number_id)], order="id", limit=1)
            if not event:
                return done
            message = payload_module().parse_message(event.payload)
            account = env["crm.whatsapp.account"].search([("phone_number_id", "=", phone_number_id)])
            e164 = "+" + message.wa_id
            partner = env["res.partner"].search([("phone", "=", e164)], limit=1) or env["res.partner"].create(
                {"name": message.profile_name, "phone": e164})
            lead = env["crm.lead"].search([("partner_id", "=", partner.id), ("stage_id.is_won", "=", False)],
                                          limit=1)
            if not lead:
                lead = env["crm.lead"].create({
                    "name": f"WhatsApp: {partner.name}", "partner_id": partner.id,
                    "user_id": account.user_id.id, "team_id": account.team_id.id,
                    "whatsapp_account_id": account.id,
                    "source_id": env.ref("crm_whatsapp_bridge.utm_source_whatsapp").id})
            post = lead.message_post(body=message.body, author_id=partner.id, message_type="comment",
                                     subtype_xmlid="mail.mt_comment", partner_ids=lead.user_id.partner_id.ids)
            env["crm.whatsapp.message"].create({
                "wamid": message.wamid, "direction": "in", "account_id": account.id, "lead_id": lead.id,
                "partner_id": partner.id, "wa_id": message.wa_id, "body": message.body,
                "message_date": message.timestamp, "mail_message_id": post.id})
            event.write({"state": "done", "lead_id": lead.id})
            done += 1


MODES = {"naive": "0", "ceiling": "1", "addon": "2"}  # last digit of the senders' tag


@contextlib.contextmanager
def bench_number(registry, notification="inbox"):
    """A WhatsApp number of its own for the run, whose salesperson (the admin) is notified by
    ``notification``; yields ``(account id, phone number id)``, then removes what the run made."""
    phone_number_id = f"88{uuid.uuid4().int % 10**12:012d}"
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        salesperson = env.ref("base.user_admin")
        previous_notification = salesperson.notification_type
        salesperson.notification_type = notification
        account_id = env["crm.whatsapp.account"].create({
            "name": "Drain bench", "phone_number_id": phone_number_id, "access_token": "x",
            "user_id": salesperson.id, "team_id": env["crm.team"].search([], limit=1).id}).id
    try:
        yield account_id, phone_number_id
    finally:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"active_test": False})
            leads = env["crm.lead"].search([("whatsapp_account_id", "=", account_id)])
            messages = env["crm.whatsapp.message"].search([("account_id", "=", account_id)])
            partners = leads.partner_id | messages.partner_id
            env["crm.inbox.event"].search([("channel_ref", "=", phone_number_id)]).unlink()
            messages.unlink()
            leads.unlink()
            partners.unlink()
            env["crm.whatsapp.account"].browse(account_id).unlink()
            env.ref("base.user_admin").notification_type = previous_notification


def run_mode(registry, name, number, events, senders, chunk=50, existing=False, round_=0):
    """Store the workload of mode ``name`` (in round ``round_``, 0 to 5) and drain it; print and return messages/s."""
    tag = f"{4 + round_}{MODES[name]}"
    account_id, phone_number_id = number
    drain = {
        "naive": lambda: naive_drain(registry, phone_number_id),
        "ceiling": lambda: ceiling_drain(registry, phone_number_id, chunk),
        "addon": lambda: drain_inbox(registry, chunk),
    }[name]
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        if existing:
            create_existing_customers(env, env["crm.whatsapp.account"].browse(account_id), senders, tag)
        stored = store(env, phone_number_id, workload(events, senders, tag))
    rss_before = rss_mb()
    reset_peak_rss()
    start = time.perf_counter()
    processed = drain()
    elapsed = time.perf_counter() - start
    rate = processed / elapsed
    print(f"{name:>8}: {processed} of {stored} events in {elapsed:.2f} s -> {rate:.1f} messages/s,"
          f" RSS {rss_before:.0f} -> {rss_mb():.0f} MB (peak {rss_mb('VmHWM'):.0f} MB)", flush=True)
    return rate


def main():
    parser = database_parser(__doc__)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--senders", type=int, default=60)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--existing", action="store_true",
                        help="the senders already have a contact and an open lead")
    parser.add_argument("--notification", choices=("inbox", "email"), default="inbox",
                        help="how the salesperson (the admin user, restored afterwards) is notified")
    parser.add_argument("--rounds", type=int, default=1, choices=range(1, 7),
                        help="run the modes this many times, alternating, and print the median ratio")
    parser.add_argument("--modes", default="ceiling,addon",
                        help="comma-separated, run in this order: ceiling, addon, naive")
    args = parser.parse_args()
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes takes {', '.join(MODES)}")
    registry = open_registry(args)
    rates = {name: [] for name in modes}
    with bench_number(registry, args.notification) as number:
        for round_ in range(args.rounds):
            for name in modes:
                rates[name].append(run_mode(registry, name, number, args.events, args.senders, args.chunk,
                                            args.existing, round_))
    for reference in ("ceiling", "naive"):
        if "addon" in rates and reference in rates:
            ratios = [addon / ref for addon, ref in zip(rates["addon"], rates[reference], strict=True)]
            print(f"   ratio: addon / {reference} = {statistics.median(ratios):.2f}x"
                  + (f" (median of {', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""))


if __name__ == "__main__":
    main()
