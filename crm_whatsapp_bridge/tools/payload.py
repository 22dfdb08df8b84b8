"""Parsing of WhatsApp Cloud API webhook notifications into small dataclasses.

The webhook only splits a notification into inbox events (:func:`split_notification`);
the processing cron turns each stored event into a message or a status update
(:func:`parse_message`, :func:`parse_status`).
"""

from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import waba

WHATSAPP_OBJECT = "whatsapp_business_account"
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
STATUS_RANK = {"sent": 1, "delivered": 2, "read": 3}


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


def split_notification(notification):
    """Split a webhook notification into inbox events, one per message or status.

    Changes of other fields (template status updates, account alerts...) carry no
    customer event and are skipped. Raises :class:`PayloadError` when the envelope
    is not a WhatsApp Business Account notification.
    """
    if not isinstance(notification, dict) or notification.get("object") != WHATSAPP_OBJECT:
        raise PayloadError("not a whatsapp_business_account notification")
    entries = notification.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("notification has no entry list")
    events = []
    for entry in entries:
        for change in _as_list(entry, "changes"):
            if change.get("field") != "messages":
                events.extend(waba.waba_events(entry, change))
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                raise PayloadError("change has no value object")
            events.extend(_events_of_value(value))
    return events


def _as_list(container, key):
    if not isinstance(container, dict):
        raise PayloadError(f"expected an object holding {key!r}")
    items = container.get(key) or []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise PayloadError(f"{key!r} must be a list of objects")
    return items


def _events_of_value(value):
    metadata = value.get("metadata") or {}
    phone_number_id = str(metadata.get("phone_number_id") or "")
    if not phone_number_id:
        raise PayloadError("value has no metadata.phone_number_id")
    names = {
        str(contact.get("wa_id")): (contact.get("profile") or {}).get("name") or ""
        for contact in _as_list(value, "contacts")
    }
    for message in _as_list(value, "messages"):
        wamid, sender = message.get("id"), str(message.get("from") or "")
        if not wamid or not sender:
            raise PayloadError("message without id or from")
        payload = {"message": message, "profile_name": names.get(sender, ""), "metadata": metadata}
        yield InboxEvent(wamid, "message", phone_number_id, sender, payload)
    for status in _as_list(value, "statuses"):
        wamid, state = status.get("id"), status.get("status")
        if not wamid or not state:
            raise PayloadError("status without id or status")
        payload = {"status": status, "metadata": metadata}
        recipient = str(status.get("recipient_id") or "")
        yield InboxEvent(f"{wamid}:{state}", "status", phone_number_id, recipient, payload)


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
