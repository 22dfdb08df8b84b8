from datetime import datetime

import pytest

from crm_whatsapp_bridge.tools.leadgen import (
    Answer,
    backfill_payload,
    default_target,
    map_answers,
    parse_lead,
    parse_time,
    split_leadgen_notification,
)
from crm_whatsapp_bridge.tools.payload import MALFORMED, PayloadError
from crm_whatsapp_bridge.tools.phone import to_e164


def test_webhook_sample_splits_into_one_event_per_leadgen_id(load_sample):
    [event] = split_leadgen_notification(load_sample("leadgen_webhook"))
    assert (event.external_id, event.event_type, event.channel_ref, event.sender) == (
        "1234567890123456", "leadgen", "104729358201746", "")
    assert event.payload["form_id"] == "987654321098765"
    assert event.payload["ad_id"] == "120210000000000002"


def test_several_changes_and_other_fields():
    notification = {"object": "page", "entry": [
        {"id": "1", "changes": [
            {"field": "leadgen", "value": {"leadgen_id": 11, "page_id": 1}},
            {"field": "feed", "value": {"item": "post"}},
            {"field": "leadgen", "value": {"leadgen_id": "12"}},  # page id from the entry
        ]},
        {"id": "2", "changes": [{"field": "leadgen", "value": {"leadgen_id": "21", "page_id": "2"}}]},
    ]}
    events = split_leadgen_notification(notification)
    assert [(e.external_id, e.channel_ref) for e in events] == [("11", "1"), ("12", "1"), ("21", "2")]
    assert events[1].payload["page_id"] == "1"


@pytest.mark.parametrize("notification", [
    None, [], {"object": "whatsapp_business_account", "entry": []}, {"object": "page"},
    {"object": "page", "entry": "x"},
])
def test_what_is_not_a_page_notification_is_refused(notification):
    with pytest.raises(PayloadError):
        split_leadgen_notification(notification)


@pytest.mark.parametrize(("entry", "reason"), [
    ("nope", "an entry must be an object"),
    ({"changes": "x"}, "an entry must be an object"),
    ({"changes": [None]}, "a change must be an object"),
    ({"changes": [{"field": "leadgen", "value": "x"}]}, "value object"),
    ({"changes": [{"field": "leadgen", "value": {"page_id": "1"}}]}, "numeric leadgen_id and page_id"),
    ({"changes": [{"field": "leadgen", "value": {"leadgen_id": "1"}}]}, "numeric leadgen_id and page_id"),
    ({"id": "1", "changes": [{"field": "leadgen", "value": {"leadgen_id": "me/accounts"}}]}, "numeric"),
    ({"id": "1", "changes": [{"field": "leadgen", "value": {"leadgen_id": "²"}}]}, "numeric"),
    ({"id": "1", "changes": [{"field": "leadgen", "value": {"leadgen_id": {"id": 1}}}]}, "numeric"),
    ({"id": "1", "changes": [{"field": "leadgen", "value": {"leadgen_id": "2", "form_id": "\x00"}}]},
     "payload.form_id contains a NUL character"),
])
def test_a_malformed_entry_or_change_is_one_malformed_event(entry, reason):
    good = {"id": "7", "changes": [{"field": "leadgen", "value": {"leadgen_id": "70", "page_id": "7"}}]}
    events = split_leadgen_notification({"object": "page", "entry": [entry, good]})
    assert [(e.event_type, e.external_id) for e in events][1:] == [("leadgen", "70")]
    assert events[0].event_type == MALFORMED
    assert reason in events[0].payload["error"]


def test_lead_sample_parses(load_sample):
    lead = parse_lead(load_sample("leadgen_lead"))
    assert lead.leadgen_id == "1234567890123456"
    assert lead.created_time == datetime(2024, 11, 24, 12, 23, 15)
    assert (lead.ad_id, lead.ad_name, lead.adset_id, lead.campaign_id, lead.campaign_name, lead.form_id) == (
        "120210000000000002", "Gold plan - carousel", "120210000000000003", "120210000000000004",
        "Q4 Gold plan leads", "987654321098765")
    assert (lead.platform, lead.is_instagram, lead.is_organic) == ("fb", False, False)
    assert lead.answers[0] == Answer("full_name", ("Yousef Amin",))
    assert lead.disclaimers == (("marketing_optin", True),)


@pytest.mark.parametrize("name", ["leadgen_form_leads_page1", "leadgen_form_leads_page2"])
def test_form_lead_pages_parse(load_sample, name):
    page = load_sample(name)
    leads = [parse_lead(obj) for obj in page["data"]]
    assert all(lead.answers and lead.created_time for lead in leads)
    assert {lead.platform for lead in leads} <= {"fb", "ig"}
    assert any(lead.is_instagram for lead in leads)


def test_missing_campaign_fields_are_empty():
    lead = parse_lead({"id": "1", "field_data": [], "is_organic": True})
    assert (lead.ad_id, lead.campaign_name, lead.created_time, lead.is_organic) == ("", "", None, True)


@pytest.mark.parametrize("lead_object", [
    {}, {"id": ""}, {"id": "1", "field_data": "x"}, {"id": "1", "field_data": ["x"]},
    {"id": "1", "created_time": "yesterday"},
])
def test_bad_lead_objects(lead_object):
    with pytest.raises(PayloadError):
        parse_lead(lead_object)


def test_parse_time_accepts_offsets_and_unix():
    assert parse_time("2024-11-24T14:23:15+0200") == datetime(2024, 11, 24, 12, 23, 15)
    assert parse_time(1732450995) == datetime(2024, 11, 24, 12, 23, 15)
    assert parse_time("") is None


def test_standard_questions_default_mapping(load_sample):
    mapped = map_answers(parse_lead(load_sample("leadgen_lead")).answers)
    assert mapped.values == {"contact_name": "Yousef Amin", "email": "yousef.amin@example.com",
                             "phone": "+15550101260", "city": "Amman", "company": "Amin Trading"}
    assert mapped.description == [("How many users?", "11-50")]
    assert default_target("Job_Title") == "job_title"
    assert default_target("favourite_colour") == "description"


def test_custom_mapping_tags_properties_ignore_and_labels():
    answers = (Answer("first_name", ("Nour",)), Answer("last_name", ("Saleh",)),
               Answer("email", ("Nour@Example.COM",)), Answer("work_email", ("nour@work.example",)),
               Answer("interests", ("CRM", "ERP")), Answer("budget", ("5000",)), Answer("secret", ("x",)),
               Answer("empty", ()), Answer("notes", ("call after 5",)))
    mapped = map_answers(answers, {"interests": "tag", "budget": "property", "secret": "ignore"},
                         {"notes": "Anything else?", "work_email": "Work email"})
    assert mapped.values == {"contact_name": "Nour Saleh", "email": "nour@example.com"}
    assert mapped.tags == ["CRM", "ERP"]
    assert mapped.properties == [("budget", "Budget", "5000")]
    # A second answer for a field already filled is kept in the description, not lost.
    assert mapped.description == [("Work email", "nour@work.example"), ("Anything else?", "call after 5")]


def test_backfill_payload_carries_the_lead(load_sample):
    lead = load_sample("leadgen_lead")
    payload = backfill_payload("104729358201746", lead)
    assert payload == {"leadgen_id": "1234567890123456", "page_id": "104729358201746",
                       "form_id": "987654321098765", "lead": lead}


@pytest.mark.parametrize("raw, region, expected", [
    ("+15550101260", None, "+15550101260"),
    ("079 123 4567", "JO", "+962791234567"),
    ("00962 79 123 4567", None, "+962791234567"),
    ("(050) 123-4567", "sa", "+966501234567"),
    ("079 123 4567", None, None),
    ("call me", "JO", None),
    ("", "JO", None),
])
def test_typed_phone_numbers_to_e164(raw, region, expected):
    assert to_e164(raw, region) == expected
