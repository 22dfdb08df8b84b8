#!/usr/bin/env python3
"""Inbox drain rate: the addon's chunked processing against a naive one-at-a-time loop.

Run it with the Python of an Odoo 18 install, on a database where crm_whatsapp_bridge
is installed (it creates its own WhatsApp number and removes what it created)::

    python bench/inbox_drain.py -c odoo.cfg -d mydb --events 600 --senders 60

Both runs get the same workload: ``--events`` text messages spread over ``--senders``
new customers, stored in the inbox exactly as the webhook stores them.

* naive: for each event, in its own transaction, the plain ORM way: find or create the
  partner and the open lead, record the message, ``message_post`` it with the
  salesperson as recipient, mark the event done, commit.
* addon: ``crm.inbox.event._process_chunk`` in READ COMMITTED chunks, as the cron does
  (per-customer advisory locks, savepoint per event, one commit per chunk, one inbox
  notification per unread burst, one toast per lead and chunk).

It prints messages/s for each and their ratio.
"""

import importlib
import time
import uuid

from odoo_bench import database_parser, drain_inbox, open_registry

from odoo import SUPERUSER_ID, api

# Filled in by main(): the addon is importable only once Odoo knows its addons path.
payload = None


def workload(events, senders, tag):
    messages = [{
        "from": f"1555{tag}{index % senders:04d}", "id": f"wamid.BENCH{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())), "type": "text", "text": {"body": f"bench message {index}"},
    } for index in range(events)]
    return messages


def store(env, phone_number_id, messages):
    notification = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "metadata": {"phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": f"Bench {m['from']}"}, "wa_id": m["from"]} for m in messages],
            "messages": messages}}]}]}
    return env["crm.inbox.event"]._store_events("whatsapp", payload.split_notification(notification))


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
            message = payload.parse_message(event.payload)
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


def main():
    parser = database_parser(__doc__)
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--senders", type=int, default=60)
    parser.add_argument("--chunk", type=int, default=50)
    args = parser.parse_args()
    registry = open_registry(args)
    global payload
    payload = importlib.import_module("odoo.addons.crm_whatsapp_bridge.tools.payload")
    phone_number_id = f"88{uuid.uuid4().int % 10**12:012d}"
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        salesperson = env.ref("base.user_admin")
        account_id = env["crm.whatsapp.account"].create({
            "name": "Drain bench", "phone_number_id": phone_number_id, "access_token": "x",
            "user_id": salesperson.id, "team_id": env["crm.team"].search([], limit=1).id}).id
    results = {}
    try:
        for name, tag, drain in (("naive", "040", lambda: naive_drain(registry, phone_number_id)),
                                 ("addon", "041", lambda: drain_inbox(registry, args.chunk))):
            with registry.cursor() as cr:
                stored = store(api.Environment(cr, SUPERUSER_ID, {}), phone_number_id,
                               workload(args.events, args.senders, tag))
            start = time.perf_counter()
            processed = drain()
            elapsed = time.perf_counter() - start
            results[name] = processed / elapsed
            print(f"{name:>6}: {processed} of {stored} events in {elapsed:.2f} s -> {results[name]:.1f} messages/s")
        print(f" ratio: addon / naive = {results['addon'] / results['naive']:.2f}x")
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


if __name__ == "__main__":
    main()
