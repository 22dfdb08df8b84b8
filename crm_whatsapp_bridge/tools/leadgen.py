"""Meta Lead Ads: webhook splitting, lead objects, and the mapping of form answers to lead fields.

A ``leadgen`` webhook carries ids only (:func:`split_leadgen_notification` turns each
change into an inbox event keyed by the leadgen id); the answers come from the Graph
API's lead object (:func:`parse_lead`), and :func:`map_answers` decides where each
answer goes on the CRM lead.
"""

from dataclasses import dataclass, field
from datetime import datetime, timezone

from .payload import (
    NUMERIC_ID,
    InboxEvent,
    PayloadError,
    entry_changes,
    envelope_entries,
    malformed_event,
    meta_id,
    storable,
)

PAGE_OBJECT = "page"
LEADGEN_FIELD = "leadgen"
EVENT_TYPE = "leadgen"

# Where an answer can go. Plain fields take the first non-empty answer; the others collect.
FIELD_TARGETS = ("contact_name", "first_name", "last_name", "email", "phone", "city", "state",
                 "country", "zip", "street", "company", "job_title")
COLLECTING_TARGETS = ("description", "tag", "property")
TARGETS = (*FIELD_TARGETS, *COLLECTING_TARGETS, "ignore")

# Meta's standard question keys and the lead field they fill by default.
STANDARD_QUESTIONS = {
    "full_name": "contact_name",
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "work_email": "email",
    "phone_number": "phone",
    "work_phone_number": "phone",
    "city": "city",
    "state": "state",
    "province": "state",
    "country": "country",
    "zip": "zip",
    "zip_code": "zip",
    "post_code": "zip",
    "postal_code": "zip",
    "street_address": "street",
    "company_name": "company",
    "job_title": "job_title",
}


def default_target(question_key):
    """The target of a question when nobody mapped it: its standard field, else the description."""
    return STANDARD_QUESTIONS.get((question_key or "").strip().lower(), "description")


@dataclass(frozen=True)
class Answer:
    key: str
    values: tuple = ()

    @property
    def text(self):
        return ", ".join(str(value).strip() for value in self.values if str(value).strip())


@dataclass(frozen=True)
class MetaLead:
    """A lead form submission, as the Graph API returns it."""

    leadgen_id: str
    created_time: datetime = None  # naive UTC
    form_id: str = ""
    ad_id: str = ""
    ad_name: str = ""
    adset_id: str = ""
    adset_name: str = ""
    campaign_id: str = ""
    campaign_name: str = ""
    platform: str = ""  # "fb" or "ig"
    is_organic: bool = False
    answers: tuple = ()
    disclaimers: tuple = ()  # (checkbox key, checked) pairs

    @property
    def is_instagram(self):
        return self.platform == "ig"


@dataclass
class MappedLead:
    """Form answers sorted by destination."""

    values: dict = field(default_factory=dict)  # FIELD_TARGETS -> text (first/last name merged)
    description: list = field(default_factory=list)  # (label, text)
    tags: list = field(default_factory=list)  # text
    properties: list = field(default_factory=list)  # (key, label, text)


def split_leadgen_notification(notification):
    """One inbox event per ``leadgen`` change of a Page notification.

    The payload is the change's value (leadgen, page, form and ad ids). Raises
    :class:`PayloadError` only when the envelope is not a Page notification with a list
    of entries; an entry or change of another shape, a ``leadgen`` change without numeric
    lead and page ids, or one PostgreSQL could not store becomes a :data:`~.payload.MALFORMED`
    event, and its neighbours are kept.
    """
    events = []
    for entry in envelope_entries(notification, PAGE_OBJECT):
        for change in entry_changes(entry, events):
            if change.get("field") == LEADGEN_FIELD:
                events.append(_leadgen_change_event(change.get("value"), entry.get("id")))
    return [storable(event) for event in events]


def _leadgen_change_event(value, entry_page_id):
    if not isinstance(value, dict):
        return malformed_event("a leadgen change must have a value object", value)
    # The ids go into Graph API paths: only Meta's numeric ids are taken.
    leadgen_id = meta_id(value.get("leadgen_id"), NUMERIC_ID)
    page_id = meta_id(value.get("page_id") or entry_page_id, NUMERIC_ID)
    if not leadgen_id or not page_id:
        return malformed_event("a leadgen change must have numeric leadgen_id and page_id", value)
    return leadgen_event(leadgen_id, page_id, dict(value, page_id=page_id))


def leadgen_event(leadgen_id, page_id, payload):
    """The inbox event of one lead (from the webhook, or from a back-fill with ``payload["lead"]``)."""
    return InboxEvent(str(leadgen_id), EVENT_TYPE, str(page_id), "", payload)


def backfill_payload(page_id, lead_object):
    """Inbox payload of a lead read by a back-fill: the lead object travels with it."""
    return {
        "leadgen_id": str(lead_object.get("id") or ""),
        "page_id": str(page_id),
        "form_id": str(lead_object.get("form_id") or ""),
        "lead": lead_object,
    }


def parse_time(raw):
    """Naive UTC datetime of Meta's ``2024-11-24T12:23:15+0000`` or a unix timestamp."""
    if raw in (None, ""):
        return None
    try:
        if isinstance(raw, (int, float)) or str(raw).isdigit():
            return datetime.fromtimestamp(int(raw), tz=timezone.utc).replace(tzinfo=None)
        return datetime.strptime(str(raw), "%Y-%m-%dT%H:%M:%S%z").astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError) as exc:
        raise PayloadError(f"bad time {raw!r}") from exc


def parse_lead(lead_object):
    """Build a :class:`MetaLead` from a Graph API lead object."""
    if not isinstance(lead_object, dict) or not lead_object.get("id"):
        raise PayloadError("lead object without id")
    field_data = lead_object.get("field_data") or []
    if not isinstance(field_data, list) or not all(isinstance(item, dict) for item in field_data):
        raise PayloadError("field_data must be a list of objects")
    answers = []
    for item in field_data:
        values = item.get("values")
        values = values if isinstance(values, list) else [values] if values not in (None, "") else []
        answers.append(Answer(str(item.get("name") or ""), tuple(str(v) for v in values if v is not None)))
    disclaimers = tuple(
        (str(item.get("checkbox_key") or ""), str(item.get("is_checked") or "") in ("1", "true", "True"))
        for item in lead_object.get("custom_disclaimer_responses") or [] if isinstance(item, dict))

    def text(key):
        return str(lead_object.get(key) or "")

    return MetaLead(
        leadgen_id=text("id"),
        created_time=parse_time(lead_object.get("created_time")),
        form_id=text("form_id"),
        ad_id=text("ad_id"),
        ad_name=text("ad_name"),
        adset_id=text("adset_id"),
        adset_name=text("adset_name"),
        campaign_id=text("campaign_id"),
        campaign_name=text("campaign_name"),
        platform=text("platform").lower(),
        is_organic=bool(lead_object.get("is_organic")),
        answers=tuple(answers),
        disclaimers=disclaimers,
    )


def map_answers(answers, mapping=None, labels=None):
    """Sort ``answers`` by target.

    :param mapping: question key -> target (one of :data:`TARGETS`); keys it does not
        name use :func:`default_target`
    :param labels: question key -> the question's label, used in the description
    """
    mapping = mapping or {}
    labels = labels or {}
    result = MappedLead()
    for answer in answers:
        text = answer.text
        if not text:
            continue
        target = mapping.get(answer.key) or default_target(answer.key)
        label = labels.get(answer.key) or answer.key.replace("_", " ").strip().capitalize()
        if target == "ignore":
            continue
        if target in FIELD_TARGETS:
            if target == "email":
                text = text.lower()
            if target in result.values:  # a second answer for the same field is kept, not lost
                result.description.append((label, text))
            else:
                result.values[target] = text
        elif target == "tag":
            result.tags.extend(value.strip() for value in answer.values if str(value).strip())
        elif target == "property":
            result.properties.append((answer.key, label, text))
        else:
            result.description.append((label, text))
    names = [result.values.pop(key, "") for key in ("first_name", "last_name")]
    if any(names) and not result.values.get("contact_name"):
        result.values["contact_name"] = " ".join(filter(None, names))
    return result

