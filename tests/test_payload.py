from datetime import datetime

import pytest
from conftest import sample_names

from crm_whatsapp_bridge.tools.payload import (
    MALFORMED,
    InboxEvent,
    PayloadError,
    load_json,
    parse_message,
    parse_status,
    sanitize,
    split_notification,
    storable,
    storage_problem,
)

WEBHOOK_SAMPLES = [name for name in sample_names("whatsapp_")
                   if name not in ("whatsapp_media_url", "whatsapp_send_ok")
                   and not name.startswith("whatsapp_send_error")]


def events_of(load_sample, name):
    return split_notification(load_sample(name))


@pytest.mark.parametrize("name", WEBHOOK_SAMPLES)
def test_every_webhook_sample_parses(load_sample, name):
    events = events_of(load_sample, name)
    assert events, name
    for event in events:
        assert event.channel_ref == "109876543210001"
        if event.event_type == "message":
            message = parse_message(event.payload)
            assert message.wamid == event.external_id
            assert message.wa_id == event.sender
            assert isinstance(message.timestamp, datetime)
        else:
            status = parse_status(event.payload)
            assert event.external_id == f"{status.wamid}:{status.status}"


def test_webhook_samples_are_present():
    assert len(WEBHOOK_SAMPLES) >= 15, "crm_whatsapp_bridge/tests/samples should hold the WhatsApp webhook samples"


def test_text(load_sample):
    (event,) = events_of(load_sample, "whatsapp_text")
    message = parse_message(event.payload)
    assert (message.message_type, message.body, message.profile_name) == (
        "text", "مرحبا، أريد عرض سعر للباقة الذهبية", "Layla Haddad")
    assert message.timestamp == datetime(2024, 11, 24, 12, 6, 40)


def test_batch_splits_messages_and_statuses(load_sample):
    events = events_of(load_sample, "whatsapp_batch_two_messages")
    assert [(e.event_type, e.sender) for e in events] == [
        ("message", "15550101250"), ("message", "15550101251"), ("status", "15550101234")]
    assert [parse_message(e.payload).profile_name for e in events[:2]] == ["Ali Youssef", "Rana Said"]
    assert events[2].external_id.endswith(":delivered")


def test_referral(load_sample):
    (event,) = events_of(load_sample, "whatsapp_referral_ctwa")
    referral = parse_message(event.payload).referral
    assert (referral.source_id, referral.source_type, referral.headline) == (
        "120210000000000001", "ad", "Spring offer: 20% off")
    assert referral.ctwa_clid.startswith("ARAkLkA8")


@pytest.mark.parametrize("name, kind, filename, caption", [
    ("whatsapp_image", "image", "", "the invoice"),
    ("whatsapp_document", "document", "rfq.pdf", "requirements"),
])
def test_media(load_sample, name, kind, filename, caption):
    (event,) = events_of(load_sample, name)
    message = parse_message(event.payload)
    assert message.message_type == kind
    assert message.media.media_id and message.media.mime_type
    assert (message.media.filename, message.body) == (filename, caption)


def test_interactive_button_and_template_replies(load_sample):
    bodies = {name: parse_message(events_of(load_sample, name)[0].payload).body for name in (
        "whatsapp_interactive_button_reply", "whatsapp_list_reply", "whatsapp_template_button")}
    assert bodies == {
        "whatsapp_interactive_button_reply": "Book a demo",
        "whatsapp_list_reply": "Gold plan - 12 months",
        "whatsapp_template_button": "Call me back",
    }
    reply = parse_message(events_of(load_sample, "whatsapp_list_reply")[0].payload)
    assert reply.context_wamid.startswith("wamid.")


def test_location_contacts_reaction_unsupported(load_sample):
    location = parse_message(events_of(load_sample, "whatsapp_location")[0].payload).location
    assert (location.latitude, location.longitude, location.name) == (24.7136, 46.6753, "Main showroom")
    assert "24.7136" in location.map_url
    (contact,) = parse_message(events_of(load_sample, "whatsapp_contacts")[0].payload).contacts
    assert (contact.name, contact.phones, contact.emails) == (
        "Rami Fares", ("+1 555 0101 240",), ("rami.fares@example.com",))
    reaction = parse_message(events_of(load_sample, "whatsapp_reaction")[0].payload)
    assert (reaction.reaction_emoji, reaction.reaction_to[:6]) == ("👍", "wamid.")
    unsupported = parse_message(events_of(load_sample, "whatsapp_unsupported")[0].payload)
    assert unsupported.message_type == "unsupported"
    assert unsupported.errors == ((131051, "Message type is currently not supported."),)


def test_statuses(load_sample):
    sent = parse_status(events_of(load_sample, "whatsapp_status_sent")[0].payload)
    assert (sent.status, sent.conversation_id, sent.pricing_category, sent.billable, sent.rank) == (
        "sent", "8c3fb9a1d2e4f5a6b7c8d9e0f1a2b3c4", "service", True, 1)
    read = parse_status(events_of(load_sample, "whatsapp_status_read")[0].payload)
    assert read.rank > sent.rank
    failed = parse_status(events_of(load_sample, "whatsapp_status_failed")[0].payload)
    assert (failed.status, failed.error_code) == ("failed", 131047)
    assert "24 hours" in failed.error_message


@pytest.mark.parametrize("notification", [
    None, [], {"object": "page", "entry": []}, {"object": "whatsapp_business_account"},
    {"object": "whatsapp_business_account", "entry": {"changes": []}},
])
def test_what_is_not_a_notification_is_refused(notification):
    with pytest.raises(PayloadError):
        split_notification(notification)


def wa_value(**value):
    return {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": value}]}]}


METADATA = {"phone_number_id": "1"}


@pytest.mark.parametrize(("notification", "channel", "reason"), [
    ({"object": "whatsapp_business_account", "entry": ["nope"]}, "", "an entry must be an object"),
    ({"object": "whatsapp_business_account", "entry": [{"changes": {"field": "messages"}}]}, "",
     "an entry must be an object"),
    ({"object": "whatsapp_business_account", "entry": [{"changes": [42]}]}, "", "a change must be an object"),
    (wa_value(), "", "metadata.phone_number_id"),
    (wa_value(metadata=[]), "", "metadata.phone_number_id"),
    (wa_value(metadata={"phone_number_id": {"id": "1"}}), "", "metadata.phone_number_id"),
    ({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": "x"}]}]}, "",
     "value object"),
    (wa_value(metadata=METADATA, messages=[{"from": "1"}]), "1", "a message must be an object whose id"),
    (wa_value(metadata=METADATA, messages=[{"id": {"$oid": "x"}, "from": "1"}]), "1", "whose id and from"),
    (wa_value(metadata=METADATA, messages=[{"id": "w" * 20000, "from": "1"}]), "1", "whose id and from"),
    (wa_value(metadata=METADATA, messages=["text"]), "1", "a message must be an object"),
    (wa_value(metadata=METADATA, messages="not a list"), "1", "value.messages must be a list"),
    (wa_value(metadata=METADATA, messages={"id": "w1"}), "1", "value.messages must be a list"),
    (wa_value(metadata=METADATA, statuses=[{"id": "w1", "status": ["read"]}]), "1", "a status must be"),
])
def test_malformed_parts_become_one_malformed_event(notification, channel, reason):
    [event] = split_notification(notification)
    assert event.event_type == MALFORMED
    assert event.external_id.startswith("malformed ") and " " not in event.external_id[len("malformed "):]
    assert event.channel_ref == channel
    assert reason in event.payload["error"]
    assert event.payload["received"] is not None
    assert split_notification(notification) == [event], "the same content always gets the same key"


def test_one_bad_message_does_not_sink_its_neighbours(load_sample):
    notification = load_sample("whatsapp_batch_two_messages")
    value = notification["entry"][0]["changes"][0]["value"]
    good = [message["id"] for message in value["messages"]]
    value["messages"].insert(1, {"id": {"nested": "object"}, "from": value["messages"][0]["from"]})
    value["messages"].append(dict(value["messages"][0], id="wamid.NUL", text={"body": "a\x00b"}))
    events = split_notification(notification)
    assert [e.external_id for e in events if e.event_type == "message"] == good
    malformed = [e for e in events if e.event_type == MALFORMED]
    assert len(malformed) == 2
    assert "whose id and from are ids" in malformed[0].payload["error"]
    assert malformed[0].payload["received"]["message"]["id"] == {"nested": "object"}
    assert "message.text.body contains a NUL character" in malformed[1].payload["error"]
    assert malformed[1].payload["received"]["message"]["text"]["body"] == "a\\u0000b", "shown as it was escaped"
    assert malformed[1].sender == value["messages"][0]["from"]


@pytest.mark.parametrize(("body", "problem"), [
    (b'{"body": "a\\u0000b"}', "contains a NUL character"),
    (b'{"a\\u0000": 1}', "has a key that contains a NUL character"),
    (b'{"body": "\\ud800"}', "lone UTF-16 surrogate"),
    (b'{"body": "x\\udfffy"}', "lone UTF-16 surrogate"),
    (b'{"latitude": NaN}', "number out of range (NaN)"),
    (b'{"latitude": -Infinity}', "number out of range (-Infinity)"),
    (b'{"latitude": 1e400}', "number out of range (1e400)"),
    (b'{"n": ' + b"9" * 5000 + b"}", "number out of range (999"),
    (b'{"deep": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper than 32 levels"),
])
def test_what_jsonb_refuses_is_found_and_sanitised(body, problem):
    import json

    value = load_json(body)
    assert problem in storage_problem(value)
    clean = sanitize(value)
    assert storage_problem(clean) == ""
    json.dumps(clean, allow_nan=False)  # and it serialises as strict JSON


def test_a_valid_pair_of_surrogates_is_one_character():
    assert load_json(b'{"t": "\\ud83d\\ude00"}') == {"t": "\U0001F600"}
    assert storage_problem({"t": "\U0001F600"}) == ""


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe{}", b"[" * 100000 + b"]" * 100000, b""])
def test_bodies_that_are_not_json_are_refused(body):
    with pytest.raises(PayloadError):
        load_json(body)


def test_an_event_jsonb_refuses_is_stored_as_malformed_not_lost():
    event = split_notification(wa_value(metadata=METADATA, messages=[
        {"id": "wamid.1", "from": "15550101234", "timestamp": "1", "type": "text", "text": {"body": "\ud800"}}]))
    [stored] = [storable(e) for e in event]
    assert stored.event_type == MALFORMED and stored.sender == "15550101234" and stored.channel_ref == "1"
    assert "wamid.1" in stored.payload["error"]
    fine = InboxEvent("wamid.2", "message", "1", "15550101234", {"message": {"id": "wamid.2"}})
    assert storable(fine) is fine


def test_other_fields_are_skipped():
    notification = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "message_template_status_update", "value": {"event": "APPROVED"}}]}]}
    assert split_notification(notification) == []


def test_malformed_events():
    with pytest.raises(PayloadError):
        parse_message({"message": {"id": "w", "from": "1", "timestamp": "nope", "type": "text"}})
    with pytest.raises(PayloadError):
        parse_message({"message": {"id": "w", "from": "1", "timestamp": "1", "type": "image", "image": {}}})
    with pytest.raises(PayloadError):
        parse_status({})


def test_unknown_type_is_kept():
    message = parse_message({"message": {"id": "w", "from": "1", "timestamp": "1", "type": "hologram",
                                         "hologram": {"x": 1}}})
    assert (message.message_type, message.body) == ("hologram", "")
