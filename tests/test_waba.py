from datetime import datetime

import pytest
from conftest import sample_names
from hypothesis import given
from hypothesis import strategies as st

from crm_whatsapp_bridge.tools.payload import PayloadError, split_notification
from crm_whatsapp_bridge.tools.waba import (
    keyword_set,
    match_keyword,
    normalise_keyword,
    parse_preference,
    parse_template_update,
    waba_events,
)

OPT_OUT = "STOP, UNSUBSCRIBE, STOP PROMOTIONS, إلغاء, توقف\nإيقاف"
OPT_IN = "START، اشتراك"


@pytest.mark.parametrize("name", sample_names("waba_"))
def test_every_waba_sample_becomes_one_parsable_event(load_sample, name):
    (event,) = split_notification(load_sample(name))
    if event.event_type == "user_preferences":
        assert (event.channel_ref, event.sender) == ("109876543210001", "15550100123")
        assert parse_preference(event.payload).wa_id == "15550100123"
    else:
        assert (event.channel_ref, event.sender) == ("102290129340398", "")
        assert parse_template_update(event.payload).kind == event.event_type


def test_user_preferences_stop_and_resume(load_sample):
    (stop,) = split_notification(load_sample("waba_user_preferences_stop"))
    preference = parse_preference(stop.payload)
    assert (preference.value, preference.timestamp, preference.detail) == (
        "stop", datetime(2025, 12, 2, 10, 23, 20), "User requested to stop marketing messages")
    assert stop.payload["profile_name"] == "Omar Saleh"
    (resume,) = split_notification(load_sample("waba_user_preferences_resume"))
    assert parse_preference(resume.payload).value == "resume"
    assert resume.external_id != stop.external_id


def test_redelivery_has_the_same_external_id(load_sample):
    first = split_notification(load_sample("waba_template_status_paused"))
    again = split_notification(load_sample("waba_template_status_paused"))
    assert [e.external_id for e in first] == [e.external_id for e in again]


def test_template_status_quality_and_category(load_sample):
    def update(name):
        (event,) = split_notification(load_sample(name))
        return parse_template_update(event.payload)

    paused = update("waba_template_status_paused")
    assert (paused.status, paused.template_id, paused.name, paused.language, paused.waba_id) == (
        "PAUSED", "1689556908129832", "order_followup", "en_US", "102290129340398")
    assert paused.reason.startswith("Your WhatsApp message template has been paused")
    assert update("waba_template_status_rejected").reason == "INCORRECT_CATEGORY"
    assert update("waba_template_quality_red").quality == "RED"
    completed = update("waba_template_category_update")
    assert (completed.category, completed.upcoming_category) == ("MARKETING", "")
    announced = update("waba_template_category_impending")
    assert (announced.category, announced.upcoming_category) == ("", "MARKETING")
    assert announced.upcoming_at == datetime(2025, 12, 9, 10, 23, 20)


def test_other_fields_and_nameless_template_changes_give_no_event():
    entry = {"id": "1"}
    assert waba_events(entry, {"field": "account_alerts", "value": {}}) == []
    assert waba_events(entry, {"field": "message_template_status_update", "value": {"event": "APPROVED"}}) == []


def test_malformed_preferences_are_refused():
    entry = {"id": "1"}
    with pytest.raises(PayloadError):
        waba_events(entry, {"field": "user_preferences", "value": {"user_preferences": []}})
    with pytest.raises(PayloadError):
        parse_preference({"preference": {"wa_id": "1", "value": "maybe", "timestamp": 1}})


@pytest.mark.parametrize("text, expected", [
    ("STOP", "stop"), (" stop! ", "stop"), ("Stop.", "stop"), ("Stop promotions", "stop"),
    ("إلغاء", "stop"), ("الغاء", "stop"), ("إلْغَاء", "stop"), ("توقـف", "stop"), ("ايقاف", "stop"),
    ("start", "start"), ("اشتراك", "start"), ("please stop calling me", None), ("stopp", None),
    ("", None), (None, None),
])
def test_keywords_in_english_and_arabic(text, expected):
    assert match_keyword(text, OPT_OUT, OPT_IN) == expected


def test_keyword_settings_split_on_latin_and_arabic_commas_and_lines():
    assert keyword_set(OPT_OUT) == {"stop", "unsubscribe", "stop promotions", "الغاء", "توقف", "ايقاف"}
    assert keyword_set(OPT_IN) == {"start", "اشتراك"}


@given(st.text())
def test_normalising_is_idempotent_and_never_fails(text):
    once = normalise_keyword(text)
    assert normalise_keyword(once) == once
    assert once == once.strip()


@given(st.text(alphabet="abcdefghij ", min_size=1).filter(str.strip), st.sampled_from(["STOP", "إلغاء", "START"]))
def test_a_keyword_inside_a_longer_sentence_is_not_a_keyword(words, keyword):
    assert match_keyword(f"{words} {keyword}", OPT_OUT, OPT_IN) is None
    assert match_keyword(f"{keyword} {words}", OPT_OUT, OPT_IN) is None


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=10)
PREFERENCE_VALUE = st.fixed_dictionaries({}, optional={
    "metadata": st.one_of(JSON, st.fixed_dictionaries({"phone_number_id": JSON})),
    "contacts": st.one_of(JSON, st.lists(st.fixed_dictionaries({"wa_id": JSON, "profile": JSON}), max_size=2)),
    "user_preferences": st.one_of(JSON, st.lists(st.one_of(JSON, st.fixed_dictionaries(
        {"wa_id": JSON, "category": st.sampled_from(["marketing_messages", "other"]), "value": JSON,
         "timestamp": JSON, "detail": JSON})), max_size=2)),
})
TEMPLATE_VALUE = st.fixed_dictionaries({}, optional={
    key: JSON for key in ("event", "message_template_id", "message_template_name", "message_template_language",
                          "reason", "other_info", "new_quality_score", "new_category", "correct_category",
                          "category_update_timestamp")})


@given(st.one_of(JSON, PREFERENCE_VALUE, TEMPLATE_VALUE), st.one_of(JSON, st.integers()),
       st.sampled_from(["user_preferences", "message_template_status_update", "message_template_quality_update",
                        "template_category_update", "account_alerts"]))
def test_arbitrary_change_values_parse_or_raise_payload_error(value, entry_time, field_name):
    try:
        events = waba_events({"id": "102290129340398", "time": entry_time}, {"field": field_name, "value": value})
        for event in events:
            if event.event_type == "user_preferences":
                parse_preference(event.payload)
            else:
                parse_template_update(event.payload)
    except PayloadError:
        pass
