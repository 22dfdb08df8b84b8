import json

import pytest
from werkzeug import Response

from crm_whatsapp_bridge.tools.graph_client import GraphApiError, GraphClient, error_from_response

TOKEN = "EAAG-secret-token"


@pytest.fixture
def client(httpserver):
    return GraphClient(TOKEN, httpserver.url_for("/v26.0"), backoff_initial=0.01, backoff_max=0.05)


def test_download_media_resolves_url_then_fetches_bytes(httpserver, client, load_sample):
    info = load_sample("whatsapp_media_url")
    info["url"] = httpserver.url_for("/lookaside/1003383421387256")
    httpserver.expect_ordered_request("/v26.0/1003383421387256", headers={
        "Authorization": f"Bearer {TOKEN}"}).respond_with_json(info)
    httpserver.expect_ordered_request("/lookaside/1003383421387256", headers={
        "Authorization": f"Bearer {TOKEN}"}).respond_with_data(b"\xff\xd8jpeg", content_type="image/jpeg")
    content, mime_type = client.download_media("1003383421387256")
    assert (content, mime_type) == (b"\xff\xd8jpeg", "image/jpeg")
    httpserver.check_assertions()


def _graph_error_handler(answers):
    calls = []

    def handler(request):
        status, body = answers[min(len(calls), len(answers) - 1)]
        calls.append(request.path)
        return Response(json.dumps(body), status=status, content_type="application/json")

    return handler, calls


def test_retries_throttling_then_succeeds(httpserver, client, load_sample):
    handler, calls = _graph_error_handler([
        (400, load_sample("whatsapp_send_error_130429")), (503, {}), (200, {"id": "1"})])
    httpserver.expect_request("/v26.0/1").respond_with_handler(handler)
    assert client.get_json("1") == {"id": "1"}
    assert len(calls) == 3


def test_gives_up_after_max_attempts(httpserver, client):
    handler, calls = _graph_error_handler([(500, {"error": {"code": 1, "message": "unknown"}})])
    httpserver.expect_request("/v26.0/1").respond_with_handler(handler)
    with pytest.raises(GraphApiError) as info:
        client.get_json("1")
    assert len(calls) == 3
    assert info.value.retryable and info.value.code == 1


@pytest.mark.parametrize("sample, code", [
    ("whatsapp_send_error_131047", 131047),
    ("graph_error_190_token_expired", 190),
])
def test_non_retryable_errors_fail_at_once(httpserver, client, load_sample, sample, code):
    handler, calls = _graph_error_handler([(400, load_sample(sample))])
    httpserver.expect_request("/v26.0/1").respond_with_handler(handler)
    with pytest.raises(GraphApiError) as info:
        client.get_json("1")
    assert len(calls) == 1
    assert (info.value.code, info.value.retryable) == (code, False)
    assert info.value.needs_admin == (code == 190)
    assert TOKEN not in str(info.value)


def test_network_failure_is_retryable():
    client = GraphClient(TOKEN, "http://127.0.0.1:9/v26.0", max_attempts=2, backoff_initial=0.01, timeout=1)
    with pytest.raises(GraphApiError) as info:
        client.get_json("1")
    assert info.value.retryable
    assert TOKEN not in str(info.value)


def test_error_classification_uses_details(load_sample):
    class FakeResponse:
        status_code, reason = 400, "Bad Request"

        def json(self):
            return load_sample("whatsapp_send_error_131047")

    error = error_from_response(FakeResponse())
    assert str(error).startswith("Message failed to send because more than 24 hours")
    assert "(code 131047)" in str(error)
