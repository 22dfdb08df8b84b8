"""WhatsApp Business Account webhook fields other than ``messages``, and opt-out keywords.

``user_preferences`` (a customer stopped or resumed marketing messages) and the three
template fields (``message_template_status_update``, ``message_template_quality_update``,
``template_category_update``) become inbox events like messages do: the webhook only
splits them (:func:`waba_events`), the processing cron parses the stored payload.
Plain Python: no Odoo import.
"""

import functools
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone

from . import payload as _payload

# webhook field -> inbox event type
TEMPLATE_FIELDS = {
    "message_template_status_update": "template_status",
    "message_template_quality_update": "template_quality",
    "template_category_update": "template_category",
}
PREFERENCE_VALUES = ("stop", "resume")

# Arabic short vowels and marks, the tatweel, and the Latin combining accents: none change a keyword.
_MARKS_RE = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ALEF_RE = re.compile("[\u0622\u0623\u0625\u0671]")  # آ أ إ ٱ -> ا
_NOT_WORD_RE = re.compile(r"[\W_]+")
_KEYWORD_SPLIT_RE = re.compile("[,\u060c\n]+")  # comma, Arabic comma, new line


@dataclass(frozen=True)
class PreferenceUpdate:
    """A customer's marketing preference, as Meta reports it."""

    wa_id: str
    value: str  # "stop" or "resume"
    timestamp: datetime
    detail: str = ""


@dataclass(frozen=True)
class TemplateUpdate:
    """A change Meta made to a message template (status, quality or category)."""

    kind: str  # "template_status", "template_quality" or "template_category"
    waba_id: str
    template_id: str
    name: str
    language: str
    at: datetime  # when Meta sent it (the entry's time), to ignore late deliveries
    status: str = ""  # APPROVED, REJECTED, PAUSED, DISABLED, ...
    reason: str = ""
    quality: str = ""  # GREEN, YELLOW, RED, UNKNOWN
    category: str = ""  # the category now in force (completed change)
    upcoming_category: str = ""  # the category Meta will switch to (announced change)
    upcoming_at: datetime = None


def _unix(raw, what):
    try:
        return datetime.fromtimestamp(int(raw), tz=timezone.utc).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise _payload.PayloadError(f"bad {what} {raw!r}") from exc


def _object(value):
    return value if isinstance(value, dict) else {}


def _digest(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def waba_events(entry, change):
    """The inbox events of one non-``messages`` change of a notification (maybe none).

    Fields this app does not handle, and template changes that name no template,
    carry nothing to do and give no event. Meta gives these changes no id: the
    external id is a digest of the change, so a redelivery is a no-op.
    """
    field_name = change.get("field")
    value = change.get("value")
    if field_name != "user_preferences" and field_name not in TEMPLATE_FIELDS:
        return []
    if not isinstance(value, dict):
        raise _payload.PayloadError("change has no value object")
    waba_id = str(entry.get("id") or "")
    if field_name == "user_preferences":
        phone_number_id = str(_object(value.get("metadata")).get("phone_number_id") or "")
        preferences = value.get("user_preferences")
        if not phone_number_id or not isinstance(preferences, list):
            raise _payload.PayloadError("user_preferences without metadata.phone_number_id or list")
        contacts = value.get("contacts") if isinstance(value.get("contacts"), list) else []
        names = {str(contact.get("wa_id")): str(_object(contact.get("profile")).get("name") or "")
                 for contact in contacts if isinstance(contact, dict)}
        events = []
        for preference in preferences:
            if not isinstance(preference, dict) or not preference.get("wa_id"):
                raise _payload.PayloadError("user preference without wa_id")
            if preference.get("category") != "marketing_messages":
                continue
            wa_id = str(preference["wa_id"])
            payload = {"preference": preference, "metadata": value.get("metadata"),
                       "profile_name": names.get(wa_id, "")}
            external_id = "pref:" + _digest(phone_number_id, preference)
            events.append(_payload.InboxEvent(external_id, "user_preferences", phone_number_id, wa_id, payload))
        return events
    if not value.get("message_template_id") and not value.get("message_template_name"):
        return []
    if not waba_id:
        raise _payload.PayloadError("template change without a WhatsApp Business Account id")
    payload = {"field": field_name, "value": value, "waba_id": waba_id, "time": entry.get("time")}
    external_id = "tpl:" + _digest(waba_id, field_name, entry.get("time"), value)
    return [_payload.InboxEvent(external_id, TEMPLATE_FIELDS[field_name], waba_id, "", payload)]


def parse_preference(payload):
    """Build a :class:`PreferenceUpdate` from a stored ``user_preferences`` inbox payload."""
    preference = payload.get("preference")
    if not isinstance(preference, dict):
        raise _payload.PayloadError("event has no preference")
    value = str(preference.get("value") or "").lower()
    if value not in PREFERENCE_VALUES:
        raise _payload.PayloadError(f"unknown preference value {value!r}")
    return PreferenceUpdate(
        wa_id=str(preference.get("wa_id") or ""),
        value=value,
        timestamp=_unix(preference.get("timestamp"), "timestamp"),
        detail=str(preference.get("detail") or ""),
    )


def _upper(value, key):
    return str(value.get(key) or "").upper()


def parse_template_update(payload):
    """Build a :class:`TemplateUpdate` from a stored template inbox payload."""
    value, field_name = payload.get("value"), payload.get("field")
    if not isinstance(value, dict) or field_name not in TEMPLATE_FIELDS:
        raise _payload.PayloadError("event has no template change")
    at = _unix(payload["time"], "time") if payload.get("time") is not None else None
    values = {
        "kind": TEMPLATE_FIELDS[field_name],
        "waba_id": str(payload.get("waba_id") or ""),
        "template_id": str(value.get("message_template_id") or ""),
        "name": str(value.get("message_template_name") or ""),
        "language": str(value.get("message_template_language") or ""),
        "at": at,
    }
    if field_name == "message_template_status_update":
        values["status"] = _upper(value, "event")
        if not values["status"]:
            raise _payload.PayloadError("template status update without event")
        info = _object(value.get("other_info"))
        reason = value.get("reason")
        values["reason"] = info.get("description") or (reason if reason not in (None, "", "NONE") else "")
    elif field_name == "message_template_quality_update":
        values["quality"] = _upper(value, "new_quality_score")
        if not values["quality"]:
            raise _payload.PayloadError("template quality update without new_quality_score")
    elif value.get("correct_category"):
        # Announced change: the category stays as it is until category_update_timestamp.
        values["upcoming_category"] = _upper(value, "correct_category")
        if value.get("category_update_timestamp") is not None:
            values["upcoming_at"] = _unix(value["category_update_timestamp"], "category_update_timestamp")
    else:
        values["category"] = _upper(value, "new_category")
        if not values["category"]:
            raise _payload.PayloadError("template category update without new_category")
    return TemplateUpdate(**values)


# ----------------------------------------------------------------------------
# Opt-out / opt-in keywords
# ----------------------------------------------------------------------------

def normalise_keyword(text):
    """A message or keyword reduced to what matters for matching.

    Case, accents, Arabic diacritics, tatweel, alef variants, punctuation, emoji and
    spacing are ignored: "Stop!", " stop " and "STOP." match STOP; "الغاء" and "إلْغاء"
    match إلغاء.
    """
    text = unicodedata.normalize("NFKD", str(text or "")).casefold()
    text = "".join(char for char in text if not unicodedata.combining(char) or "\u0600" <= char <= "\u06ff")
    text = _ALEF_RE.sub("\u0627", _MARKS_RE.sub("", unicodedata.normalize("NFC", text)))
    return " ".join(_NOT_WORD_RE.sub(" ", text).split())


@functools.lru_cache(maxsize=64)
def keyword_set(raw):
    """The normalised keywords of a setting: separated by commas (Latin or Arabic) or new lines.

    Cached: a number's settings are read for every message it receives.
    """
    return frozenset(keyword for keyword in map(normalise_keyword, _KEYWORD_SPLIT_RE.split(raw or "")) if keyword)


def match_keyword(text, opt_out, opt_in):
    """``"stop"`` when the whole message is an opt-out keyword, ``"start"`` for an opt-in one, else None.

    ``opt_out`` and ``opt_in`` are the raw settings (see :func:`keyword_set`). A
    message that merely contains a keyword ("please stop calling me at work") is an
    ordinary message.
    """
    message = normalise_keyword(text)
    if not message:
        return None
    if message in keyword_set(opt_out):
        return "stop"
    if message in keyword_set(opt_in):
        return "start"
    return None
