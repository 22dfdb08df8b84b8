from datetime import datetime

import pytest
from conftest import sample_names

from crm_whatsapp_bridge.tools.payload import (
    PayloadError,
    parse_message,
    parse_status,
    split_notification,
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
    {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": "x"}]}]},
    {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
        "metadata": {}}}]}]},
    {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": "1"}, "messages": [{"from": "1"}]}}]}]},
    {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": "1"}, "messages": "not a list"}}]}]},
])
def test_malformed_notifications(notification):
    with pytest.raises(PayloadError):
        split_notification(notification)


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
