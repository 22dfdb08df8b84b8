"""Property-based tests: whatever arrives from outside, the parsers give a value or a named error.

Webhook bodies go through ``load_json`` and a splitter: the result is a list of events
PostgreSQL can store and index (or ``PayloadError`` for a body that is no notification);
API parameters give a value or a 400 ``ApiError`` naming the parameter.
"""

import json
import re
import string
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_whatsapp_bridge.tools.api_params import (
    MAX_ID,
    MAX_LIMIT,
    ApiError,
    check_text,
    like_literal,
    parse_choice,
    parse_datetime,
    parse_id,
    parse_json_object,
    parse_limit,
)
from crm_whatsapp_bridge.tools.leadgen import split_leadgen_notification
from crm_whatsapp_bridge.tools.payload import (
    MALFORMED,
    PayloadError,
    load_json,
    split_notification,
    storage_problem,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every character, lone surrogates and NUL included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
# Numbers JSON can write but Python cannot keep (replaced in the encoded body, see ``encode``).
RAW_NUMBERS = ("1e400", "-1e400", "NaN", "Infinity", "-Infinity", "9" * 5000, "1" + "0" * 30)
raw_number = st.sampled_from(RAW_NUMBERS).map(lambda token: f"@@{token}@@")
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text, raw_number)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)


def deep(levels):
    return "[" * levels + "]" * levels


def encode(value):
    """The bytes Meta would have signed: NaN and Infinity as literals, raw number tokens spliced in."""
    text = json.dumps(value)  # ensure_ascii: a lone surrogate is written as its \\uXXXX escape
    return re.sub(r'"@@([^"@]+)@@"', r"\1", text).encode()


BAD_IDS = st.sampled_from(("w" * 20000, {"id": "x"}, "a\x00", "\ud800", "a b", "²", 1e400, -1))


def ids(*valid):
    """Mostly one of ``valid``, sometimes an id PostgreSQL or Meta would refuse, or anything."""
    return st.integers(0, 9).flatmap(lambda draw: (json_values, BAD_IDS)[draw] if draw < 2 else st.sampled_from(valid))


def maybe(strategy):
    """Mostly (9 times in 10) the documented shape, else anything at all."""
    return st.integers(0, 9).flatmap(lambda draw: strategy if draw else json_values)


wa_message = st.fixed_dictionaries({
    "id": ids("wamid.A", "wamid.B", "wamid.C"),
    "from": ids("15550101234", 15550101235),
    "timestamp": maybe(st.just("1732450000")),
    "type": maybe(st.just("text")),
    "text": maybe(st.fixed_dictionaries({"body": any_text})),
})
wa_status = st.fixed_dictionaries({
    "id": ids("wamid.OUT"), "status": ids("sent", "read"), "recipient_id": ids("15550101234"),
})
wa_value = st.fixed_dictionaries({
    "metadata": maybe(st.fixed_dictionaries({"phone_number_id": ids("109876543210001")})),
    "contacts": maybe(st.lists(st.fixed_dictionaries({
        "wa_id": ids("15550101234"), "profile": maybe(st.fixed_dictionaries({"name": any_text}))}), max_size=2)),
    "messages": maybe(st.lists(maybe(wa_message), max_size=4)),
    "statuses": maybe(st.lists(maybe(wa_status), max_size=2)),
})
whatsapp_notifications = st.fixed_dictionaries({
    "object": maybe(st.just("whatsapp_business_account")),
    "entry": maybe(st.lists(maybe(st.fixed_dictionaries({
        "id": ids("102290129340398"),
        "changes": maybe(st.lists(maybe(st.fixed_dictionaries({
            "field": maybe(st.just("messages")), "value": maybe(wa_value)})), max_size=3)),
    })), max_size=3)),
})
page_notifications = st.fixed_dictionaries({
    "object": maybe(st.just("page")),
    "entry": maybe(st.lists(maybe(st.fixed_dictionaries({
        "id": ids("104729358201746"),
        "changes": maybe(st.lists(maybe(st.fixed_dictionaries({
            "field": maybe(st.just("leadgen")),
            "value": maybe(st.fixed_dictionaries({
                "leadgen_id": ids("1234567890123456", 1234567890123457, "²"),
                "page_id": ids("104729358201746"),
                "form_id": maybe(st.just("987654321098765")),
                "created_time": maybe(st.just(1732450995)),
            })),
        })), max_size=3)),
    })), max_size=3)),
})

META_ID = re.compile(r"[!-~]{1,256}")


def assert_storable(events):
    """What the inbox INSERT needs: jsonb-clean payloads, btree-sized keys, no key shared by two kinds."""
    for event in events:
        assert storage_problem(event.payload) == "", event
        json.loads(json.dumps(event.payload, allow_nan=False))
        assert event.channel_ref == "" or META_ID.fullmatch(event.channel_ref)
        assert event.sender == "" or META_ID.fullmatch(event.sender)
        if event.event_type == MALFORMED:
            assert re.fullmatch(r"malformed [0-9a-f]{64}", event.external_id)
            assert isinstance(event.payload["error"], str) and "received" in event.payload
        else:
            assert re.fullmatch(r"[!-~]{1,600}", event.external_id), event.external_id


def split_body(split, body):
    try:
        return split(load_json(body))
    except PayloadError:
        return None


@SETTINGS
@given(whatsapp_notifications, st.sampled_from((0, 0, 0, 40, 2000)))
def test_whatsapp_bodies_give_storable_events_or_payload_error(notification, nesting):
    body = encode(notification)
    if nesting:  # the same notification with something deeply nested inside it
        body = body[:-1] + f', "deep": {deep(nesting)}}}'.encode() if body.endswith(b"}") else body
    events = split_body(split_notification, body)
    if events is not None:
        assert_storable(events)


@SETTINGS
@given(page_notifications)
def test_page_bodies_give_storable_events_or_payload_error(notification):
    events = split_body(split_leadgen_notification, encode(notification))
    if events is not None:
        assert_storable(events)
        for event in events:
            if event.event_type != MALFORMED:
                assert event.external_id.isdigit() and event.channel_ref.isdigit()


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_are_json_or_payload_error(body):
    try:
        load_json(body)
    except PayloadError:
        pass


@SETTINGS
@given(st.lists(st.one_of(st.fixed_dictionaries({
    "id": st.sampled_from(["wamid.A", "wamid.B"]), "from": st.just("15550101234"),
    "text": st.fixed_dictionaries({"body": any_text})}), json_values), min_size=1, max_size=6))
def test_each_message_stands_alone(messages):
    """Valid messages are stored whatever their neighbours are; each other one is one malformed event."""
    notification = {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": "1"}, "messages": messages}}]}]}
    events = split_notification(load_json(encode(notification)))
    assert len(events) == len(messages)
    for message, event in zip(messages, events, strict=True):
        if event.event_type == "message":
            assert event.external_id == message["id"]
            assert event.payload["message"] == message


# ---------------------------------------------------------------- API parameters

digit_strings = st.one_of(
    st.text(string.digits, min_size=1, max_size=12),
    st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=4),  # "²", "٣", "¼"
    st.just("9" * 5000),
)
params_text = st.one_of(any_text, digit_strings)


def named_error(call, name, *args):
    try:
        return call(*args)
    except ApiError as error:
        assert error.status == 400 and error.code == "invalid_parameter"
        assert error.message.startswith(f"{name}:")
        return error


@SETTINGS
@given(params_text)
def test_limit(raw):
    result = named_error(parse_limit, "limit", raw)
    assert isinstance(result, ApiError) or 1 <= result <= MAX_LIMIT


@SETTINGS
@given(params_text)
def test_ids(raw):
    result = named_error(parse_id, "team_id", "team_id", raw)
    assert isinstance(result, ApiError) or result is None or 1 <= result <= MAX_ID


iso_like = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:00{}".format,
    st.sampled_from((1, 2, 1970, 2026, 9998, 9999)), st.integers(1, 12), st.integers(1, 28),
    st.integers(0, 23), st.integers(0, 59),
    st.sampled_from(("", "Z", "+00:00", "+01:00", "-01:00", "+23:59", "-23:59", "+24:00", "+5")),
)


@SETTINGS
@given(st.one_of(iso_like, params_text))
def test_datetimes(raw):
    result = named_error(parse_datetime, "created_after", "created_after", raw)
    assert isinstance(result, ApiError) or result is None or (
        isinstance(result, datetime) and result.tzinfo is None)


@SETTINGS
@given(params_text)
def test_choice(raw):
    result = named_error(parse_choice, "type", "type", raw, ("lead", "opportunity"))
    assert isinstance(result, ApiError) or result in (None, "lead", "opportunity")


@SETTINGS
@given(st.dictionaries(any_text, json_values, max_size=4))
def test_text_check(params):
    try:
        check_text(params)
    except ApiError as error:
        assert error.status == 400
        error.message.encode("utf-8")  # the answer itself can be sent


@SETTINGS
@given(st.one_of(st.binary(max_size=100), st.builds(encode, json_values)))
def test_json_bodies(raw):
    try:
        body = parse_json_object(raw)
    except ApiError as error:
        assert error.status == 400 and error.code in ("invalid_json", "invalid_parameter")
    else:
        assert isinstance(body, dict)


@SETTINGS
@given(any_text)
def test_like_literal_has_no_wildcard_left(text):
    pattern = like_literal(text)
    # Every %, _ and \ of the pattern is escaped, so it ends with an escaped character, never the escape.
    assert re.fullmatch(r"(?:[^\\%_]|\\[\\%_])*", pattern, flags=re.S)
