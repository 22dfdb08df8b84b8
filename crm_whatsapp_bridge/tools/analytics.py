"""Funnel events for GA4 (Measurement Protocol, or a server-side GTM container) and Meta's Conversions API.

Payload builders, the limits both APIs enforce, the normalisation and hashing
Meta asks for, and a small GA4 client (requests + tenacity). The Conversions API
call itself goes through :class:`~.graph_client.GraphClient`, which already
classifies Graph errors.
"""

import hashlib
import re
import threading
from urllib.parse import urlencode

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

DEFAULT_GA4_URL = "https://www.google-analytics.com"
GA4_PATH = "/mp/collect"
GA4_DEBUG_PATH = "/debug/mp/collect"
GA4_MAX_EVENTS = 25
GA4_MAX_PARAMS = 25
GA4_MAX_NAME = 40
GA4_MAX_VALUE = 100
GA4_MAX_USER_PROPERTY_NAME = 24
GA4_MAX_USER_PROPERTY_VALUE = 36
# GA4 drops events whose timestamp is more than 72 hours old; older ones are sent without it.
GA4_MAX_BACKDATE_SECONDS = 72 * 3600
GA4_RESERVED_PREFIXES = ("_", "firebase_", "ga_", "google_")
GA4_RESERVED_EVENTS = frozenset({
    "ad_activeview", "ad_click", "ad_exposure", "ad_query", "ad_reward", "adunit_exposure", "app_clear_data",
    "app_exception", "app_install", "app_remove", "app_store_refund", "app_update", "app_upgrade",
    "dynamic_link_app_open", "dynamic_link_app_update", "dynamic_link_first_open", "error", "first_open",
    "first_visit", "in_app_purchase", "notification_dismiss", "notification_foreground", "notification_open",
    "notification_receive", "os_update", "session_start", "session_start_with_rollout", "user_engagement",
})
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

CAPI_MAX_EVENTS = 1000
CAPI_MAX_AGE_SECONDS = 7 * 24 * 3600
# Click-to-WhatsApp conversions are attributed to the ad for this long after the click.
CTWA_ATTRIBUTION_SECONDS = 7 * 24 * 3600
# The event names Meta accepts with action_source "business_messaging" (others: subcode 2804066).
MESSAGING_EVENT_NAMES = ("LeadSubmitted", "QualifiedLead", "Purchase", "InitiateCheckout", "AddToCart",
                         "ViewContent")
RESTRICTED_REGION_TEXT = "restrictive region"
# Meta's error subcodes for a bad event in a Conversions API request (time, names, user data...), as
# opposed to request-wide problems (unknown dataset: subcode 33, permissions, token) where sending
# parts of the request cannot help.
CAPI_EVENT_SUBCODES = range(2804000, 2805000)
DEFAULT_TIMEOUT = 10  # seconds


class AnalyticsError(Exception):
    """A request that GA4 (or the sGTM container) refused, or that could not reach it."""

    def __init__(self, message, *, http_status=None, retryable=False):
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.retryable = retryable

    def __str__(self):
        return f"{self.message} [HTTP {self.http_status}]" if self.http_status else self.message


class InvalidEvent(ValueError):
    """An event GA4 would drop silently (bad name, reserved name, too many params)."""


# ----------------------------------------------------------------------
# GA4
# ----------------------------------------------------------------------

def check_name(name, kind="event"):
    """Raise :class:`InvalidEvent` unless ``name`` is a valid, unreserved GA4 event or parameter name."""
    if not isinstance(name, str) or len(name) > GA4_MAX_NAME or not NAME_PATTERN.match(name):
        raise InvalidEvent(f"invalid GA4 {kind} name {name!r}: letters, digits and _, "
                           f"starting with a letter, at most {GA4_MAX_NAME} characters")
    if name.lower().startswith(GA4_RESERVED_PREFIXES) or (kind == "event" and name in GA4_RESERVED_EVENTS):
        raise InvalidEvent(f"GA4 reserves the {kind} name {name!r}")


def _is_empty(value):
    # 0 and 0.0 are real values (a lead worth nothing yet); None, False and "" are not.
    return value is None or value is False or value == ""


def _clip(value, size):
    return value[:size] if isinstance(value, str) else value


def ga4_event(name, params):
    """A GA4 event object; empty params are dropped and string values cut to GA4's 100 characters."""
    check_name(name)
    params = {key: value for key, value in (params or {}).items() if not _is_empty(value)}
    if len(params) > GA4_MAX_PARAMS:
        raise InvalidEvent(f"GA4 event {name!r} has {len(params)} parameters (at most {GA4_MAX_PARAMS})")
    for key in params:
        check_name(key, "parameter")
    return {"name": name, "params": {key: _clip(value, GA4_MAX_VALUE) for key, value in params.items()}}


def ga4_user_properties(properties):
    """GA4 ``user_properties`` (``{name: {"value": ...}}``), names and values cut to GA4's limits."""
    return {
        name[:GA4_MAX_USER_PROPERTY_NAME]: {"value": _clip(value, GA4_MAX_USER_PROPERTY_VALUE)}
        for name, value in (properties or {}).items() if not _is_empty(value)
    }


def ga4_body(client_id, events, *, timestamp=None, user_properties=None, now=None):
    """The JSON body of one Measurement Protocol request for one client.

    ``timestamp`` (unix seconds) back-dates the events, unless it is older than
    GA4 accepts (72 hours before ``now``): then GA4's own receive time is used.
    """
    if len(events) > GA4_MAX_EVENTS:
        raise InvalidEvent(f"a GA4 request carries at most {GA4_MAX_EVENTS} events, not {len(events)}")
    body = {"client_id": str(client_id), "non_personalized_ads": True}
    if timestamp and (now is None or now - timestamp < GA4_MAX_BACKDATE_SECONDS):
        body["timestamp_micros"] = int(timestamp * 1_000_000)
    if user_properties:
        body["user_properties"] = user_properties
    body["events"] = list(events)
    return body


def batched(items, size):
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    items = list(items)
    return [items[start:start + size] for start in range(0, len(items), size)]


def group_ga4_requests(rows, key=lambda row: row["client_id"]):
    """Group rows into GA4 requests: one client per request, at most 25 events each, in row order."""
    by_client = {}
    for row in rows:
        by_client.setdefault(key(row), []).append(row)
    return [batch for client_rows in by_client.values() for batch in batched(client_rows, GA4_MAX_EVENTS)]


def event_id(seed, dedup_key):
    """A stable, opaque id of one funnel event (the same on every replay of it).

    Meta deduplicates Conversions API events on ``event_name`` + ``event_id``; GA4
    receives it as the ``crm_event_id`` parameter, so exports can drop replays. Derived
    from the per-database secret ``seed``, it reveals neither the database nor the lead.
    """
    return hashlib.sha256(f"{seed}:{dedup_key}".encode()).hexdigest()[:32]


def pseudonymous_client_id(seed, lead_id, created_at):
    """A stable GA client id for a lead that carries none, in GA's ``<random>.<timestamp>`` shape.

    It is derived from a per-database secret ``seed`` and the lead id only, so it
    reveals nothing about the person and never changes for the lead.
    """
    digest = hashlib.sha256(f"{seed}:{lead_id}".encode()).hexdigest()
    return f"{int(digest, 16) % 10**10}.{int(created_at)}"


def ga4_url(base_url, measurement_id, api_secret, debug=False):
    """The collect (or validation) URL; the secret only ever lives in this URL, never in stored payloads."""
    base = (base_url or DEFAULT_GA4_URL).rstrip("/")
    query = urlencode({"measurement_id": measurement_id, "api_secret": api_secret})
    return f"{base}{GA4_DEBUG_PATH if debug else GA4_PATH}?{query}"


def _is_retryable(exc):
    return isinstance(exc, AnalyticsError) and exc.retryable


class Ga4Client:
    """Sends Measurement Protocol requests to GA4 or a server-side GTM container.

    Thread-safe: each thread gets its own HTTP session, so a caller can send the
    requests of many clients in parallel.
    """

    def __init__(self, measurement_id, api_secret, base_url=DEFAULT_GA4_URL, *, debug=False,
                 timeout=DEFAULT_TIMEOUT, max_attempts=3, backoff_initial=0.5, backoff_max=8.0):
        self.url = ga4_url(base_url, measurement_id, api_secret, debug)
        self._api_secret = api_secret
        self.debug = debug
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._local = threading.local()

    def _session(self):
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _send_once(self, body):
        # The request URL carries the API secret, and requests' own errors quote the URL: no text
        # of theirs is kept, nor chained (``from None``), so no error, log line or notice shows it.
        try:
            response = self._session().post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            retryable = isinstance(exc, (requests.Timeout, requests.ConnectionError))
            kind = "unreachable" if retryable else "refused the request"
            raise AnalyticsError(f"GA4 endpoint {kind}: {type(exc).__name__}", retryable=retryable) from None
        if not response.ok:
            retryable = response.status_code >= 500 or response.status_code in (408, 429)
            raise AnalyticsError(self._scrub(response.reason) or "GA4 error", http_status=response.status_code,
                                 retryable=retryable)
        return response

    def _scrub(self, text):
        """``text`` (a server's words) without the API secret, should an endpoint echo the URL."""
        return text.replace(self._api_secret, "***") if text and self._api_secret else text

    def send(self, body):
        """POST one request; return the validation messages (always empty outside debug mode).

        5xx, 429, timeouts and lost connections are retried with exponential backoff
        and jitter; other errors raise :class:`AnalyticsError` at once.
        """
        retrying = Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(multiplier=self.backoff_initial, jitter=self.backoff_initial,
                                         max=self.backoff_max),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                response = self._send_once(body)
        if not self.debug:
            return []
        try:
            return response.json().get("validationMessages") or []
        except ValueError as exc:
            raise AnalyticsError("the GA4 validation server answered something that is not JSON",
                                 http_status=response.status_code) from exc


# ----------------------------------------------------------------------
# Meta Conversions API for CRM
# ----------------------------------------------------------------------

def normalise_email(email):
    """Meta's email normalisation: trimmed and lowercase; ``None`` when it is no address."""
    email = (email or "").strip().lower()
    return email if "@" in email else None


def normalise_phone(phone):
    """Meta's phone normalisation: digits only, with the country code, no ``+`` nor ``00`` prefix.

    The number must already carry its country code (E.164, as the addon stores
    phones); ``None`` when nothing is left.
    """
    text = (phone or "").strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.startswith("00"):
        digits = digits[2:]
    digits = digits.lstrip("0")
    return digits or None


def sha256_hex(value):
    return hashlib.sha256(value.encode()).hexdigest()


def capi_user_data(leadgen_id, email=None, phone=None):
    """``user_data`` of a CRM event: the Meta lead id, plus hashed email and phone when known."""
    user_data = {"lead_id": int(leadgen_id)}
    email = normalise_email(email)
    if email:
        user_data["em"] = [sha256_hex(email)]
    phone = normalise_phone(phone)
    if phone:
        user_data["ph"] = [sha256_hex(phone)]
    return user_data


def capi_event(event_name, event_time, leadgen_id, email=None, phone=None, *, event_id):
    """One Conversions API for CRM event (a lead reaching a stage of the funnel)."""
    if not event_name:
        raise InvalidEvent("a Conversions API event needs a name")
    return {
        "event_name": event_name,
        "event_time": int(event_time),
        "event_id": event_id,
        "action_source": "system_generated",
        "custom_data": {"event_source": "crm", "lead_event_source": "Odoo"},
        "user_data": capi_user_data(leadgen_id, email, phone),
    }


def capi_body(events, test_event_code=None):
    """The body of ``POST /<dataset id>/events``; ``test_event_code`` routes it to Test Events."""
    if len(events) > CAPI_MAX_EVENTS:
        raise InvalidEvent(f"a Conversions API request carries at most {CAPI_MAX_EVENTS} events")
    body = {"data": list(events)}
    if test_event_code:
        body["test_event_code"] = test_event_code
    return body


# ----------------------------------------------------------------------
# Meta Conversions API for Business Messaging (Click-to-WhatsApp ads)
# ----------------------------------------------------------------------

def capi_messaging_event(event_name, event_time, waba_id, ctwa_clid, *, event_id, value=None, currency=None):
    """One business-messaging event of a conversation started from a Click-to-WhatsApp ad.

    Meta attributes it to the ad through the click id; ``value`` and ``currency`` go
    with purchases.
    """
    if event_name not in MESSAGING_EVENT_NAMES:
        raise InvalidEvent(f"Meta does not accept {event_name!r} for business messaging")
    if not (waba_id and ctwa_clid):
        raise InvalidEvent("a business messaging event needs the WhatsApp Business Account id and the click id")
    event = {
        "event_name": event_name,
        "event_time": int(event_time),
        "event_id": event_id,
        "action_source": "business_messaging",
        "messaging_channel": "whatsapp",
        "user_data": {"whatsapp_business_account_id": str(waba_id), "ctwa_clid": ctwa_clid},
    }
    if value is not None and currency:
        event["custom_data"] = {"currency": currency, "value": value}
    return event


def capi_refusal(error):
    """How Meta refused a Conversions API request, from its error.

    ``"region"``: Meta does not take messaging events for the person's region (final,
    for that event alone); ``"content"``: Meta refused an event of the request (a
    Conversions API event subcode), so resending it unchanged cannot help but its
    parts can go alone; ``None``: anything else (unknown dataset, token, permission,
    throttling, server trouble), which concerns the whole request.
    """
    text = " ".join(str(part or "") for part in (
        getattr(error, "message", ""), getattr(error, "user_message", ""))).lower()
    if RESTRICTED_REGION_TEXT in text:
        return "region"
    if (getattr(error, "http_status", None) == 400 and not getattr(error, "retryable", False)
            and getattr(error, "subcode", None) in CAPI_EVENT_SUBCODES):
        return "content"
    return None
