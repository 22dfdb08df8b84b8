import hashlib
import json

import pytest
from werkzeug import Response

from crm_whatsapp_bridge.tools.analytics import (
    AnalyticsError,
    Ga4Client,
    InvalidEvent,
    capi_body,
    capi_event,
    event_id,
    ga4_body,
    ga4_event,
    ga4_url,
    ga4_user_properties,
    group_ga4_requests,
    normalise_email,
    normalise_phone,
    pseudonymous_client_id,
)
from crm_whatsapp_bridge.tools.graph_client import GraphApiError, GraphClient

SECRET = "ga4-secret-value"


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("raw, expected", [
    (" Jane.Doe@Example.COM ", "jane.doe@example.com"),
    ("jane@example.com", "jane@example.com"),
    ("", None),
    (None, None),
    ("not an address", None),
])
def test_normalise_email(raw, expected):
    assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("+962 79 123 4567", "962791234567"),
    ("+1 (650) 555-1234", "16505551234"),
    ("00962791234567", "962791234567"),
    ("962791234567", "962791234567"),
    ("", None),
    (None, None),
    ("n/a", None),
])
def test_normalise_phone(raw, expected):
    assert normalise_phone(raw) == expected


def test_capi_event_hashes_normalised_email_and_phone():
    event = capi_event("Qualified", 1732450000.7, "1234567890123456",
                       email=" Jane.Doe@Example.com", phone="+962 79 123 4567", event_id="e-1")
    assert event == {
        "event_name": "Qualified",
        "event_time": 1732450000,
        "event_id": "e-1",
        "action_source": "system_generated",
        "custom_data": {"event_source": "crm", "lead_event_source": "Odoo"},
        "user_data": {"lead_id": 1234567890123456, "em": [sha("jane.doe@example.com")],
                      "ph": [sha("962791234567")]},
    }
    # The hash of Meta's own documentation example (a lowercase, trimmed address).
    assert sha("jane.doe@example.com") == hashlib.sha256(b"jane.doe@example.com").hexdigest()


def test_event_id_is_stable_opaque_and_distinct():
    key = "meta:42:Qualified:stage3"
    assert event_id("seed-1", key) == event_id("seed-1", key)
    assert len(event_id("seed-1", key)) == 32
    assert all(ch in "0123456789abcdef" for ch in event_id("seed-1", key)), "reveals nothing of the key"
    assert len({event_id("seed-1", key), event_id("seed-2", key), event_id("seed-1", key + "x")}) == 3


def test_capi_event_without_contact_data_sends_only_the_lead_id():
    assert capi_event("Won", 1, "987654321012345", event_id="e")["user_data"] == {"lead_id": 987654321012345}
    with pytest.raises(InvalidEvent):
        capi_event("", 1, "1", event_id="e")


def test_capi_body_limits_and_test_event_code():
    events = [capi_event("Qualified", 1, str(i + 1), event_id=str(i)) for i in range(1000)]
    assert "test_event_code" not in capi_body(events)
    assert capi_body(events[:1], "TEST123")["test_event_code"] == "TEST123"
    with pytest.raises(InvalidEvent):
        capi_body(events + events[:1])


def test_ga4_event_drops_empty_params_keeps_zero_and_cuts_long_strings():
    event = ga4_event("qualify_lead", {"value": 0, "currency": "USD", "lead_source": "x" * 150,
                                       "unconvert_lead_reason": None, "session_id": ""})
    assert event == {"name": "qualify_lead", "params": {"value": 0, "currency": "USD", "lead_source": "x" * 100}}


@pytest.mark.parametrize("name", ["generate-lead", "1lead", "session_start", "ga_lead", "_lead", "x" * 41, ""])
def test_ga4_event_refuses_invalid_or_reserved_names(name):
    with pytest.raises(InvalidEvent):
        ga4_event(name, {})


def test_ga4_event_refuses_too_many_or_bad_params():
    with pytest.raises(InvalidEvent):
        ga4_event("generate_lead", {f"p{i}": i for i in range(26)})
    with pytest.raises(InvalidEvent):
        ga4_event("generate_lead", {"firebase_x": 1})


def test_ga4_user_properties_respect_name_and_value_limits():
    assert ga4_user_properties({"lead_source_of_this_lead_x": "y" * 40, "empty": ""}) == {
        "lead_source_of_this_lead": {"value": "y" * 36}}


def test_ga4_body_backdates_only_within_72_hours():
    events = [ga4_event("generate_lead", {"value": 1})]
    now = 1_732_450_000
    body = ga4_body("1.2", events, timestamp=now - 3600, user_properties={"a": {"value": "b"}}, now=now)
    assert body == {"client_id": "1.2", "non_personalized_ads": True, "timestamp_micros": (now - 3600) * 1_000_000,
                    "user_properties": {"a": {"value": "b"}}, "events": events}
    assert "timestamp_micros" not in ga4_body("1.2", events, timestamp=now - 73 * 3600, now=now)
    with pytest.raises(InvalidEvent):
        ga4_body("1.2", events * 26)


def test_group_ga4_requests_one_client_per_request_25_events_max():
    rows = [{"client_id": "a", "i": i} for i in range(30)] + [{"client_id": "b", "i": 0}, {"client_id": "a", "i": 30}]
    groups = group_ga4_requests(rows)
    assert [(group[0]["client_id"], len(group)) for group in groups] == [("a", 25), ("a", 6), ("b", 1)]
    assert [row["i"] for row in groups[0] + groups[1]] == list(range(31)), "order kept within a client"


def test_pseudonymous_client_id_is_stable_and_shaped_like_ga():
    first = pseudonymous_client_id("db-uuid", 42, 1732450000.9)
    assert first == pseudonymous_client_id("db-uuid", 42, 1732450000.9)
    assert first != pseudonymous_client_id("db-uuid", 43, 1732450000.9)
    assert first != pseudonymous_client_id("other-db", 42, 1732450000.9)
    random_part, timestamp = first.split(".")
    assert random_part.isdigit() and len(random_part) <= 10 and timestamp == "1732450000"


def test_ga4_url_replaces_only_the_base_for_server_side_gtm():
    assert ga4_url("https://sgtm.example.com/", "G-1", "s&x") == \
        "https://sgtm.example.com/mp/collect?measurement_id=G-1&api_secret=s%26x"
    assert ga4_url(None, "G-1", "s", debug=True).startswith("https://www.google-analytics.com/debug/mp/collect?")


def _answers(answers):
    calls = []

    def handler(request):
        status, body = answers[min(len(calls), len(answers) - 1)]
        calls.append(json.loads(request.data))
        return Response(body if isinstance(body, str) else json.dumps(body), status=status,
                        content_type="application/json")

    return handler, calls


def _client(httpserver, debug=False):
    return Ga4Client("G-TEST", SECRET, httpserver.url_for("/"), debug=debug, backoff_initial=0.01, backoff_max=0.02)


def test_ga4_client_posts_to_collect_with_query_and_retries_5xx(httpserver):
    handler, calls = _answers([(503, ""), (204, "")])
    httpserver.expect_request("/mp/collect", method="POST",
                              query_string={"measurement_id": "G-TEST", "api_secret": SECRET}
                              ).respond_with_handler(handler)
    body = ga4_body("1.2", [ga4_event("generate_lead", {"value": 1})])
    assert _client(httpserver).send(body) == []
    assert calls == [body, body]


def test_ga4_client_debug_returns_validation_messages(httpserver, load_sample):
    sample = load_sample("ga4_debug_response")
    httpserver.expect_request("/debug/mp/collect", method="POST").respond_with_json(sample)
    assert _client(httpserver, debug=True).send(ga4_body("1.2", [])) == sample["validationMessages"]


@pytest.mark.parametrize("status, retryable, calls_expected", [(500, True, 3), (429, True, 3), (400, False, 1),
                                                               (403, False, 1)])
def test_ga4_client_classifies_errors(httpserver, status, retryable, calls_expected):
    handler, calls = _answers([(status, "{}")])
    httpserver.expect_request("/mp/collect").respond_with_handler(handler)
    with pytest.raises(AnalyticsError) as info:
        _client(httpserver).send(ga4_body("1.2", []))
    assert info.value.retryable is retryable and info.value.http_status == status
    assert len(calls) == calls_expected
    assert SECRET not in str(info.value)


def test_ga4_client_unreachable_is_retryable():
    client = Ga4Client("G-TEST", SECRET, "http://127.0.0.1:9", max_attempts=2, backoff_initial=0.01, timeout=1)
    with pytest.raises(AnalyticsError) as info:
        client.send(ga4_body("1.2", []))
    assert info.value.retryable


def test_capi_send_events_posts_to_the_dataset_and_retries_throttling(httpserver, load_sample):
    handler, calls = _answers([(400, {"error": {"code": 17, "message": "User request limit reached"}}),
                               (200, load_sample("capi_events_ok"))])
    httpserver.expect_request("/v26.0/880000000000001/events", method="POST",
                              headers={"Authorization": "Bearer capi-token"}).respond_with_handler(handler)
    client = GraphClient("capi-token", httpserver.url_for("/v26.0"), backoff_initial=0.01, backoff_max=0.02)
    body = capi_body([capi_event("Qualified", 1, "123", event_id="e")], "TEST123")
    assert client.send_events("880000000000001", body)["events_received"] == 2
    assert calls == [body, body]


def test_capi_invalid_parameter_is_not_retried(httpserver):
    handler, calls = _answers([(400, {"error": {"code": 100, "message": "Invalid parameter"}})])
    httpserver.expect_request("/v26.0/1/events").respond_with_handler(handler)
    client = GraphClient("capi-token", httpserver.url_for("/v26.0"), backoff_initial=0.01)
    with pytest.raises(GraphApiError) as info:
        client.send_events("1", capi_body([]))
    assert not info.value.retryable and len(calls) == 1
