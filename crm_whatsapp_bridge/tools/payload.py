"""Parsing of WhatsApp Cloud API webhook notifications into small dataclasses.

The webhook only splits a notification into inbox events (:func:`split_notification`);
the processing cron turns each stored event into a message or a status update
(:func:`parse_message`, :func:`parse_status`).
"""

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import waba

WHATSAPP_OBJECT = "whatsapp_business_account"
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3}
# Event type of what a signed notification carried that is not a usable event: it is
# stored under a key no real event can have ("malformed <sha256>") and goes dead.
MALFORMED = "malformed"
# Meta's ids (wamids, phone number ids, wa_ids, statuses) are short printable ASCII; the
# bound keeps every key far below what a PostgreSQL btree index entry can hold.
META_ID = re.compile(r"[!-~]{1,256}")
NUMERIC_ID = re.compile(r"[0-9]{1,64}")
EVENT_KEY = re.compile(r"[!-~]{1,600}")  # an id, or a status key "<wamid>:<status>"
# Meta's payloads are a handful of levels deep; anything deeper is not Meta's.
MAX_DEPTH = 32


class PayloadError(ValueError):
    """The notification or event does not have the shape Meta documents."""


@dataclass(frozen=True)
class InboxEvent:
    """One message or status of a notification, as stored in the inbox."""

    external_id: str
    event_type: str  # "message" or "status" ("leadgen" for Lead Ads, see leadgen.py)
    channel_ref: str  # Meta's id of the receiving channel: WhatsApp phone number ID or Page ID
    sender: str  # wa_id of the customer (message sender or status recipient); may be empty
    payload: dict


@dataclass(frozen=True)
class Media:
    media_id: str
    mime_type: str = ""
    sha256: str = ""
    filename: str = ""
    voice: bool = False


@dataclass(frozen=True)
class Referral:
    """Where a Click-to-WhatsApp conversation started (ad or post)."""

    source_id: str = ""
    source_type: str = ""
    source_url: str = ""
    headline: str = ""
    body: str = ""
    ctwa_clid: str = ""


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str = ""
    address: str = ""

    @property
    def map_url(self):
        return f"https://www.openstreetmap.org/?mlat={self.latitude}&mlon={self.longitude}"


@dataclass(frozen=True)
class SharedContact:
    name: str
    phones: tuple = ()
    emails: tuple = ()


@dataclass(frozen=True)
class InboundMessage:
    """A customer's message, with what the chatter needs to show it."""

    wamid: str
    wa_id: str
    profile_name: str
    message_type: str
    timestamp: datetime
    body: str = ""  # the customer's own words: text, caption, button or list title
    media: Media = None
    referral: Referral = None
    location: Location = None
    contacts: tuple = ()
    reaction_emoji: str = ""
    reaction_to: str = ""
    context_wamid: str = ""
    errors: tuple = field(default=())  # (code, details) pairs, e.g. unsupported types


@dataclass(frozen=True)
class StatusUpdate:
    wamid: str
    status: str
    timestamp: datetime
    recipient_id: str
    error_code: int = 0
    error_message: str = ""
    conversation_id: str = ""
    conversation_origin: str = ""
    pricing_category: str = ""
    billable: bool = None

    @property
    def rank(self):
        return STATUS_RANK.get(self.status, 0)


# ----------------------------------------------------------------------
# What PostgreSQL can store
# ----------------------------------------------------------------------

class UnstorableNumber:
    """A JSON number Python cannot keep as a finite int or float: NaN, Infinity, 1e400, 5,000 digits."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"UnstorableNumber({self.text[:40]!r})"


def _json_float(text):
    value = float(text)
    return value if math.isfinite(value) else UnstorableNumber(text)


def _json_int(text):
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return UnstorableNumber(text)


def load_json(body):
    """The JSON value of a webhook body (bytes), keeping numbers Python cannot hold as
    :class:`UnstorableNumber`; raises :class:`PayloadError` when the body is not UTF-8 JSON
    or is nested too deeply for Python's parser."""
    try:
        return json.loads(body.decode("utf-8"), parse_float=_json_float, parse_int=_json_int,
                          parse_constant=UnstorableNumber)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"the body is not UTF-8 JSON ({type(exc).__name__})") from None


def meta_id(value, pattern=META_ID):
    """``value`` as one of Meta's ids (a string, or an integer that is sent as one), else ""."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10 ** 64:
        value = str(value)
    return value if isinstance(value, str) and pattern.fullmatch(value) else ""


def text_problem(text):
    """What PostgreSQL refuses in ``text`` (a NUL character, a lone UTF-16 surrogate), or ""."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate"
    return ""


def storage_problem(value, path="payload", depth=0):
    """Why PostgreSQL's jsonb could not store ``value`` (naming where), or "" when it can."""
    if isinstance(value, str):
        problem = text_problem(value)
        return f"{path} {problem}" if problem else ""
    if isinstance(value, UnstorableNumber):
        return f"{path} is a number out of range ({value.text[:40]})"
    if isinstance(value, float):
        return "" if math.isfinite(value) else f"{path} is not a finite number"
    if value is None or isinstance(value, (bool, int)):
        return ""
    if not isinstance(value, (dict, list, tuple)):
        return f"{path} is not a JSON value"
    if depth >= MAX_DEPTH:
        return f"{path} is nested deeper than {MAX_DEPTH} levels"
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(key, str) and text_problem(key):
            return f"{path} has a key that {text_problem(key)}"
        problem = storage_problem(item, f"{path}.{key}"[:200] if isinstance(key, str) else f"{path}[{key}]",
                                  depth + 1)
        if problem:
            return problem
    return ""


def _storable_text(text):
    """``text`` with what PostgreSQL refuses written as the JSON escape that carried it."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def sanitize(value, depth=0):
    """A copy of ``value`` that jsonb stores, as close to the original as it can be."""
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, UnstorableNumber):
        return value.text
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if not isinstance(value, (dict, list, tuple)):
        return _storable_text(repr(value))
    if depth >= MAX_DEPTH:
        return f"(nested deeper than {MAX_DEPTH} levels: not kept)"
    if isinstance(value, dict):
        return {_storable_text(str(key)): sanitize(item, depth + 1) for key, item in value.items()}
    return [sanitize(item, depth + 1) for item in value]


def malformed_event(reason, received, channel_ref="", sender=""):
    """The inbox event recording what could not be an event, with a sanitised copy of it.

    Its key is the digest of that copy: a redelivery stores nothing new, and it can never
    take the key of a real event (Meta's ids have no space).
    """
    payload = sanitize({"error": reason, "received": received})
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return InboxEvent(f"{MALFORMED} {digest}", MALFORMED, meta_id(channel_ref), meta_id(sender), payload)


def storable(event):
    """``event`` when PostgreSQL can store and index it as it is, else its :func:`malformed_event`."""
    if event.event_type == MALFORMED:
        return event
    problem = storage_problem(event.payload)
    if not problem and not (isinstance(event.external_id, str) and EVENT_KEY.fullmatch(event.external_id)):
        problem = "its id is not one of Meta's ids"
    if not problem and any(value and meta_id(value) != value for value in (event.channel_ref, event.sender)):
        problem = "its channel or sender is not one of Meta's ids"
    if not problem:
        return event
    return malformed_event(f"{event.event_type} {str(event.external_id)[:80]!r}: {problem}", event.payload,
                           event.channel_ref, event.sender)


def split_notification(notification):
    """Split a webhook notification into inbox events, one per message or status.

    Changes of other fields of the WhatsApp Business Account (marketing preferences,
    template status, quality and category updates) become the events of
    :func:`~.waba.waba_events`; the rest are skipped. Raises :class:`PayloadError` only when the envelope
    is not a WhatsApp Business Account notification with a list of entries; inside it,
    each entry, change, message or status that is malformed, or that PostgreSQL could
    not store, becomes one :data:`MALFORMED` event and its neighbours are kept.
    """
    events = []
    for entry in envelope_entries(notification, WHATSAPP_OBJECT):
        for change in entry_changes(entry, events):
            if change.get("field") == "messages":
                events.extend(_events_of_value(change.get("value")))
            else:
                events.extend(_waba_events(entry, change))
    return [storable(event) for event in events]


def _waba_events(entry, change):
    """The events of a non-``messages`` change; one malformed event when its shape is not Meta's."""
    try:
        return waba.waba_events(entry, change)
    except (PayloadError, AttributeError, KeyError, TypeError, ValueError) as exc:
        return [malformed_event(f"{change.get('field')!r} change: {exc}", change)]


def envelope_entries(notification, object_name):
    """The ``entry`` list of a notification about ``object_name``; PayloadError otherwise."""
    if not isinstance(notification, dict) or notification.get("object") != object_name:
        raise PayloadError(f"not a {object_name} notification")
    entries = notification.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("notification has no entry list")
    return entries


def entry_changes(entry, events):
    """The change objects of an entry; what is not one is added to ``events`` as malformed."""
    changes = entry.get("changes") if isinstance(entry, dict) else None
    if not isinstance(changes, list):
        events.append(malformed_event("an entry must be an object with a list of changes", entry))
        return []
    for change in changes:
        if not isinstance(change, dict):
            events.append(malformed_event("a change must be an object", change))
    return [change for change in changes if isinstance(change, dict)]


def _profile_names(contacts):
    """wa_id -> profile name. A contact card of another shape only costs the customer's name."""
    names = {}
    for contact in contacts if isinstance(contacts, list) else []:
        profile = contact.get("profile") if isinstance(contact, dict) else None
        name = profile.get("name") if isinstance(profile, dict) else None
        wa_id = meta_id(contact.get("wa_id")) if isinstance(contact, dict) else ""
        if wa_id and isinstance(name, str):
            names[wa_id] = name
    return names


def _events_of_value(value):
    if not isinstance(value, dict):
        yield malformed_event("a messages change must have a value object", value)
        return
    metadata = value.get("metadata")
    phone_number_id = meta_id(metadata.get("phone_number_id")) if isinstance(metadata, dict) else ""
    if not phone_number_id:
        yield malformed_event("value.metadata.phone_number_id is missing or is not an id", value)
        return
    lists = {}
    for key in ("messages", "statuses"):
        lists[key] = value.get(key) or []
        if not isinstance(lists[key], list):
            yield malformed_event(f"value.{key} must be a list", {"metadata": metadata, key: lists.pop(key)},
                                  phone_number_id)
    names = _profile_names(value.get("contacts"))
    for message in lists.get("messages", []):
        yield _message_event(message, phone_number_id, metadata, names)
    for status in lists.get("statuses", []):
        yield _status_event(status, phone_number_id, metadata)


def _string_id(obj, key):
    """``obj[key]`` when ``obj`` is an object and it is one of Meta's ids written as a string."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return meta_id(value) if isinstance(value, str) else ""


def _message_event(message, phone_number_id, metadata, names):
    wamid = _string_id(message, "id")
    sender = meta_id(message.get("from")) if wamid else ""
    if not sender:
        return malformed_event("a message must be an object whose id and from are ids",
                               {"message": message, "metadata": metadata}, phone_number_id)
    payload = {"message": message, "profile_name": names.get(sender, ""), "metadata": metadata}
    return InboxEvent(wamid, "message", phone_number_id, sender, payload)


def _status_event(status, phone_number_id, metadata):
    wamid = _string_id(status, "id")
    state = _string_id(status, "status") if wamid else ""
    if not state:
        return malformed_event("a status must be an object whose id and status are ids",
                               {"status": status, "metadata": metadata}, phone_number_id)
    payload = {"status": status, "metadata": metadata}
    return InboxEvent(f"{wamid}:{state}", "status", phone_number_id, meta_id(status.get("recipient_id")), payload)


def _timestamp(raw):
    try:
        return datetime.fromtimestamp(int(raw), tz=timezone.utc).replace(tzinfo=None)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"bad timestamp {raw!r}") from exc


def _error_text(error):
    details = (error.get("error_data") or {}).get("details")
    return details or error.get("message") or error.get("title") or ""


def _errors(obj):
    return tuple((int(err.get("code") or 0), _error_text(err)) for err in obj.get("errors") or [])


def parse_message(payload):
    """Build an :class:`InboundMessage` from a stored ``message`` inbox payload."""
    message = payload.get("message")
    if not isinstance(message, dict):
        raise PayloadError("event has no message")
    message_type = message.get("type") or "unsupported"
    content = message.get(message_type) if isinstance(message.get(message_type), dict) else {}
    values = {
        "wamid": message.get("id") or "",
        "wa_id": str(message.get("from") or ""),
        "profile_name": payload.get("profile_name") or "",
        "message_type": message_type,
        "timestamp": _timestamp(message.get("timestamp")),
        "context_wamid": (message.get("context") or {}).get("id") or "",
        "errors": _errors(message),
    }
    if message.get("referral"):
        ref = message["referral"]
        values["referral"] = Referral(
            source_id=str(ref.get("source_id") or ""),
            source_type=ref.get("source_type") or "",
            source_url=ref.get("source_url") or "",
            headline=ref.get("headline") or "",
            body=ref.get("body") or "",
            ctwa_clid=ref.get("ctwa_clid") or "",
        )
    if message_type == "text":
        values["body"] = content.get("body") or ""
    elif message_type in MEDIA_TYPES:
        if not content.get("id"):
            raise PayloadError(f"{message_type} message without media id")
        values["body"] = content.get("caption") or ""
        values["media"] = Media(
            media_id=str(content["id"]),
            mime_type=content.get("mime_type") or "",
            sha256=content.get("sha256") or "",
            filename=content.get("filename") or "",
            voice=bool(content.get("voice")),
        )
    elif message_type == "interactive":
        reply = content.get(content.get("type") or "") or {}
        values["body"] = " - ".join(filter(None, (reply.get("title"), reply.get("description"))))
    elif message_type == "button":
        values["body"] = content.get("text") or content.get("payload") or ""
    elif message_type == "location":
        try:
            values["location"] = Location(
                latitude=float(content["latitude"]),
                longitude=float(content["longitude"]),
                name=content.get("name") or "",
                address=content.get("address") or "",
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError("location without coordinates") from exc
    elif message_type == "contacts":
        values["contacts"] = tuple(_shared_contact(card) for card in message.get("contacts") or [])
    elif message_type == "reaction":
        values["reaction_emoji"] = content.get("emoji") or ""
        values["reaction_to"] = content.get("message_id") or ""
    elif message_type == "system":
        values["body"] = content.get("body") or ""
    return InboundMessage(**values)


def _shared_contact(card):
    name = card.get("name") or {}
    full_name = name.get("formatted_name") or " ".join(
        filter(None, (name.get("first_name"), name.get("last_name")))
    )
    return SharedContact(
        name=full_name,
        phones=tuple(p.get("phone") or p.get("wa_id") or "" for p in card.get("phones") or []),
        emails=tuple(e.get("email") or "" for e in card.get("emails") or []),
    )


def parse_status(payload):
    """Build a :class:`StatusUpdate` from a stored ``status`` inbox payload."""
    status = payload.get("status")
    if not isinstance(status, dict):
        raise PayloadError("event has no status")
    errors = _errors(status)
    conversation = status.get("conversation") or {}
    pricing = status.get("pricing") or {}
    return StatusUpdate(
        wamid=status.get("id") or "",
        status=status.get("status") or "",
        timestamp=_timestamp(status.get("timestamp")),
        recipient_id=str(status.get("recipient_id") or ""),
        error_code=errors[0][0] if errors else 0,
        error_message=errors[0][1] if errors else "",
        conversation_id=conversation.get("id") or "",
        conversation_origin=(conversation.get("origin") or {}).get("type") or "",
        pricing_category=pricing.get("category") or "",
        billable=pricing.get("billable"),
    )
