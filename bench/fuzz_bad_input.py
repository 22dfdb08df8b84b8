#!/usr/bin/env python3
"""Fuzz the webhooks and the JSON API of ``crm_whatsapp_bridge`` with bad input; count the 5xx.

Against a running Odoo (loopback only), the script sends:

* ``--webhooks`` signed POSTs, alternately to ``/crm/webhook/whatsapp`` and
  ``/crm/webhook/meta``: a valid notification (several messages or leadgen changes)
  with one to three of its nodes, chosen at random, replaced by a bad value: a wrong
  JSON type, ``\\u0000`` in a string or a key, a lone surrogate, ``NaN``, ``Infinity``,
  ``1e400``, a 5,000-digit number, a 20,000-character id, nesting 40 or 1,000 deep;
* ``--api-calls`` requests to ``GET /crm/leads``, ``GET /crm/stats``,
  ``POST /crm/sync-meta``, ``POST /crm/sync-bigquery`` and ``GET /crm/sync-bigquery/<id>``
  with one to three parameters (or body keys) set to bad values. ``cursor`` is left out.

It prints the answers by status and, for every 5xx, the shape that caused it, then a
``RESULT {json}`` line. The same ``--seed`` sends the same requests.

Set-up: the app secret in Settings (``--secret``), an API key of a Sales Manager
(``--key``), and the Graph / BigQuery URLs pointed at a closed local port so that
nothing can reach Meta or Google (see bench/README.md).
"""
import argparse
import collections
import copy
import hashlib
import hmac
import json
import random
import sys
from urllib.parse import urlsplit

import requests

TIMEOUT = 60
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class Raw:
    """JSON text spliced into a body as it is (what json.dumps never writes)."""

    def __init__(self, text, label):
        self.text, self.label = text, label


def deep(levels):
    return "[" * levels + "]" * levels


BAD_VALUES = [
    (None, "null"), (True, "true"), (0, "0"), (-1, "-1"), (1.5, "1.5"), ("", "empty string"),
    ("\u00b2", "superscript two"), ([], "empty list"), ({}, "empty object"), (["x"], "list"),
    ({"id": {"nested": 1}}, "object"), ("w" * 20000, "20,000 characters"),
    (Raw("NaN", ""), "NaN"), (Raw("-Infinity", ""), "-Infinity"), (Raw("1e400", ""), "1e400"),
    (Raw("9" * 5000, ""), "5,000 digits"), (Raw('"a\\u0000b"', ""), "NUL in a string"),
    (Raw('{"k\\u0000": 1}', ""), "NUL in a key"), (Raw('"\\ud800"', ""), "lone surrogate"),
    (Raw('"x\\udfff"', ""), "lone low surrogate"), (Raw(deep(40), ""), "nested 40 deep"),
    (Raw(deep(1000), ""), "nested 1,000 deep"),
]
BAD_TEXT = [
    "\u00b2", "\u0663", "9" * 5000, "2147483648", "99999999999999999999", "-1", "0", "1.5", " 7", "\\", "%",
    "_", "\\%", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0000-00-00", "2026-13-45",
    "\x00", "a\x00b", "Infinity", "NaN", "1e400", "null", "[]", "{}", "x" * 10000, "\ufffd", "\U0001F600",
    "' OR 1=1 --", "opportunity", "lead", "whatsapp", "2026-11-01",
]


def whatsapp_notification(rng, n):
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100000", "phone_number_id": "109876543210001"},
        "contacts": [{"profile": {"name": f"Fuzz {i}"}, "wa_id": f"1555030{n:04d}{i}"} for i in range(3)],
        "messages": [{"from": f"1555030{n:04d}{i}", "id": f"wamid.FUZZ{n:06d}M{i}", "timestamp": "1732450000",
                      "type": "text", "text": {"body": f"fuzz {n} {i}"}} for i in range(3)],
        "statuses": [{"id": f"wamid.FUZZOUT{n:06d}", "status": "read", "timestamp": "1732450000",
                      "recipient_id": f"1555030{n:04d}0"}],
    }
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]}


def page_notification(rng, n):
    changes = [{"field": "leadgen", "value": {"leadgen_id": f"88{n:08d}{i}", "page_id": "104729358201746",
                                              "form_id": "987654321098765", "created_time": 1732450995}}
               for i in range(3)]
    return {"object": "page", "entry": [{"id": "104729358201746", "time": 1732451000, "changes": changes}]}


def nodes(value, path=()):
    """Every (path, node) of a JSON value, the root excluded."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield (*path, key), item
        yield from nodes(item, (*path, key))


def replace(value, path, new):
    for key in path[:-1]:
        value = value[key]
    value[path[-1]] = new


def encode(value):
    raws = {}

    def default(obj):
        token = f"@@RAW{len(raws)}@@"
        raws[token] = obj.text
        return token

    text = json.dumps(value, default=default)
    for token, raw in raws.items():
        text = text.replace(f'"{token}"', raw)
    return text.encode()


def mutated_webhook(rng, n):
    """(path, body, shape) of a notification with 1 to 3 nodes replaced by bad values."""
    if n % 2:
        path, notification = "/crm/webhook/meta", page_notification(rng, n)
    else:
        path, notification = "/crm/webhook/whatsapp", whatsapp_notification(rng, n)
    shape = []
    for _ in range(rng.randint(1, 3)):
        target, _node = rng.choice(list(nodes(notification)))
        bad, label = rng.choice(BAD_VALUES)
        replace(notification, target, copy.deepcopy(bad))
        shape.append(f"{'.'.join(str(key) for key in target)}={label}")
    return path, encode(notification), "; ".join(shape)


def sign(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


API_ROUTES = [
    ("GET", "/crm/leads", ["team_id", "user_id", "stage", "source", "type", "created_after", "updated_after", "q",
                           "limit"]),
    ("GET", "/crm/stats", ["date_from", "date_to", "team_id", "user_id", "source"]),
    ("POST", "/crm/sync-meta", ["page_ids", "form_ids", "since", "other"]),
    ("POST", "/crm/sync-bigquery", ["full", "other"]),
]


def api_call(rng):
    """(method, path, params, body, shape) of one API request with bad values."""
    method, path, names = rng.choice(API_ROUTES + [("GET", "/crm/sync-bigquery/<id>", [])])
    if path.endswith("<id>"):
        run_id = rng.choice(BAD_TEXT)
        return method, path.replace("<id>", requests.utils.quote(run_id, safe="")), {}, None, f"id={run_id[:20]!r}"
    chosen = rng.sample(names, rng.randint(1, min(3, len(names))))
    if method == "GET":
        params = {name: rng.choice(BAD_TEXT) for name in chosen}
        if path == "/crm/stats":
            params = {"date_from": "2026-01-01", "date_to": "2026-02-01", **params}
        return method, path, params, None, ", ".join(f"{k}={v[:20]!r}" for k, v in params.items())
    body = {}
    for name in chosen:
        bad, _label = rng.choice(BAD_VALUES + [(text, repr(text[:20])) for text in BAD_TEXT])
        bad = copy.deepcopy(bad)
        body[name] = [bad] if name.endswith("_ids") and rng.random() < 0.5 else bad
    return method, path, {}, encode(body), ", ".join(body)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8069")
    parser.add_argument("--secret", required=True, help="the Meta app secret set in Settings")
    parser.add_argument("--key", required=True, help="an API key of a Sales Manager")
    parser.add_argument("--webhooks", type=int, default=1500)
    parser.add_argument("--api-calls", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--allow-remote", action="store_true")
    args = parser.parse_args()
    if urlsplit(args.url).hostname not in LOOPBACK_HOSTS and not args.allow_remote:
        sys.exit("refusing a non-loopback URL without --allow-remote")
    rng = random.Random(args.seed)
    session = requests.Session()
    session.trust_env = False
    result = {}
    failures = collections.Counter()

    statuses = collections.Counter()
    for n in range(args.webhooks):
        path, body, shape = mutated_webhook(rng, n)
        response = session.post(args.url + path, data=body, timeout=TIMEOUT, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": sign(args.secret, body)})
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures[f"{path} {shape}"] += 1
    result["webhooks"] = {"sent": args.webhooks, "5xx": sum(c for s, c in statuses.items() if s >= 500),
                          "statuses": dict(sorted(statuses.items()))}

    statuses = collections.Counter()
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    for _ in range(args.api_calls):
        method, path, params, body, shape = api_call(rng)
        response = session.request(method, args.url + path, params=params, data=body, headers=headers,
                                   timeout=TIMEOUT)
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures[f"{method} {path} {shape}"] += 1
        elif response.status_code in (401, 403):
            sys.exit(f"{response.status_code}: check --key (a Sales Manager's API key)")
    result["api"] = {"sent": args.api_calls, "5xx": sum(c for s, c in statuses.items() if s >= 500),
                     "statuses": dict(sorted(statuses.items()))}

    for kind in ("webhooks", "api"):
        print(f"{kind}: {result[kind]['5xx']} of {result[kind]['sent']} got a 5xx; answers {result[kind]['statuses']}")
    for shape, count in failures.most_common(30):
        print(f"  5xx x{count}: {shape[:200]}")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
