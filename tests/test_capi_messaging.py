"""Business messaging events, Meta's refusals and the Cloud API send client, without Odoo."""

import json
import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_whatsapp_bridge.tools.analytics import (
    MESSAGING_EVENT_NAMES,
    InvalidEvent,
    capi_messaging_event,
    capi_refusal,
)
from crm_whatsapp_bridge.tools.graph_client import GraphApiError, error_from_response
from crm_whatsapp_bridge.tools.outbound import CloudApiClient, SendOutcomeUnknown, text_message

WABA = "102290129340398"
CLICK = "ARAkLkA8rmlFeiCk"


def test_purchase_carries_value_and_currency_and_nothing_personal():
    event = capi_messaging_event("Purchase", 1764671000.9, WABA, CLICK, event_id="e1", value=142.52, currency="USD")
    assert event == {
        "event_name": "Purchase", "event_time": 1764671000, "event_id": "e1",
        "action_source": "business_messaging", "messaging_channel": "whatsapp",
        "user_data": {"whatsapp_business_account_id": WABA, "ctwa_clid": CLICK},
        "custom_data": {"currency": "USD", "value": 142.52},
    }
    assert "custom_data" not in capi_messaging_event("LeadSubmitted", 1, WABA, CLICK, event_id="e2")


@pytest.mark.parametrize("name", ["Lead", "Qualified", "", "purchase"])
def test_names_meta_refuses_for_business_messaging_are_not_built(name):
    with pytest.raises(InvalidEvent):
        capi_messaging_event(name, 1, WABA, CLICK, event_id="e")


def test_a_messaging_event_needs_the_waba_and_the_click():
    for waba, click in ((WABA, ""), ("", CLICK)):
        with pytest.raises(InvalidEvent):
            capi_messaging_event(MESSAGING_EVENT_NAMES[0], 1, waba, click, event_id="e")


class FakeResponse:
    def __init__(self, status, body):
        self.status_code = status
        self.ok = status < 400
        self.reason = "Bad Request"
        self._body = body

    def json(self):
        if isinstance(self._body, bytes):
            raise ValueError("not JSON")
        return self._body


def region_error():
    return {"error": {"message": "Invalid parameter", "code": 100, "error_subcode": 2804019,
                      "error_user_title": "Messaging Event Within Messaging Restrictive Region",
                      "error_user_msg": "Not available in this region."}}


def test_refusals_are_classified_from_meta_errors():
    region = error_from_response(FakeResponse(400, region_error()))
    assert (region.subcode, capi_refusal(region)) == (2804019, "region")
    assert region.user_message == "Messaging Event Within Messaging Restrictive Region: Not available in this region."
    content = error_from_response(FakeResponse(400, {"error": {
        "message": "Invalid parameter", "code": 100, "error_subcode": 2804003,
        "error_user_title": "Event Timestamp Too Old"}}))
    assert capi_refusal(content) == "content"
    for status, body in ((400, {"error": {"code": 100, "error_subcode": 33, "message": "Object does not exist"}}),
                         (400, {"error": {"code": 100, "message": "Invalid parameter"}}),
                         (400, {"error": {"code": 190, "message": "token expired"}}),
                         (400, {"error": {"code": 17, "message": "User request limit reached"}}),
                         (500, {"error": {"code": 2, "message": "Service temporarily unavailable"}})):
        assert capi_refusal(error_from_response(FakeResponse(status, body))) is None
    assert capi_refusal(GraphApiError("Graph API unreachable: ConnectTimeout", retryable=True)) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20)
error_objects = st.fixed_dictionaries({}, optional={
    "message": json_values, "code": json_values, "error_subcode": json_values, "error_user_title": json_values,
    "error_user_msg": json_values, "fbtrace_id": st.text(), "error_data": st.just({}) | st.just({"details": "x"})})


@settings(max_examples=300, deadline=None)
@given(status=st.integers(400, 599), body=st.one_of(
    st.fixed_dictionaries({"error": error_objects}), st.dictionaries(st.text(max_size=10), json_values, max_size=3),
    st.binary(max_size=20)))
def test_any_error_body_gives_a_classified_error(status, body):
    error = error_from_response(FakeResponse(status, body))
    assert isinstance(error, GraphApiError)
    assert isinstance(error.user_message, str)
    assert capi_refusal(error) in (None, "region", "content")
    str(error)


def serve_once(handle):
    """A TCP server on a free port that runs ``handle(connection)`` for one connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def run():
        connection, _address = server.accept()
        with connection:
            handle(connection)
        server.close()

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}"


def test_an_answer_lost_after_the_request_left_is_unknown_and_not_retried():
    received = []

    def read_then_hang_up(connection):
        received.append(connection.recv(65536))

    client = CloudApiClient("token", serve_once(read_then_hang_up), backoff_initial=0.01, timeout=5)
    with pytest.raises(SendOutcomeUnknown) as raised:
        client.send_message("42", text_message("15550101234", "hello"))
    assert not raised.value.retryable
    assert len(received) == 1 and b"POST /42/messages" in received[0]


def test_a_connection_never_opened_is_retried():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = CloudApiClient("token", f"http://127.0.0.1:{closed_port}", backoff_initial=0.01, max_attempts=2)
    with pytest.raises(GraphApiError) as raised:
        client.send_message("42", text_message("15550101234", "hello"))
    assert raised.value.retryable and not isinstance(raised.value, SendOutcomeUnknown)


def test_meta_refusals_of_a_message_keep_their_classification():
    def refuse(connection):
        connection.recv(65536)
        body = json.dumps({"error": {"code": 131047, "message": "Re-engagement message"}}).encode()
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: "
                           + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)

    client = CloudApiClient("token", serve_once(refuse), backoff_initial=0.01)
    with pytest.raises(GraphApiError) as raised:
        client.send_message("42", text_message("15550101234", "hello"))
    assert (raised.value.code, raised.value.retryable, type(raised.value)) == (131047, False, GraphApiError)
