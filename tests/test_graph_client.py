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


def test_send_message_posts_json_and_returns_wamid(httpserver, client, load_sample):
    message = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "15550101234",
               "type": "text", "text": {"body": "مرحبا", "preview_url": False}}
    httpserver.expect_request("/v26.0/109876543210001/messages", method="POST", json=message, headers={
        "Authorization": f"Bearer {TOKEN}"}).respond_with_json(load_sample("whatsapp_send_ok"))
    assert client.send_message("109876543210001", message) == \
        "wamid.HBgLMTU1NTAxMDEyMzQVAgARGBJGNTc3QkQ1RUQ1NjMyNzk4QjAA"
    httpserver.check_assertions()


def test_send_message_throttled_then_accepted(httpserver, client, load_sample):
    handler, calls = _graph_error_handler([
        (400, load_sample("whatsapp_send_error_130429")), (200, load_sample("whatsapp_send_ok"))])
    httpserver.expect_request("/v26.0/1/messages", method="POST").respond_with_handler(handler)
    assert client.send_message("1", {"type": "text"}).startswith("wamid.")
    assert len(calls) == 2


def test_send_message_outside_window_is_not_retried(httpserver, client, load_sample):
    handler, calls = _graph_error_handler([(400, load_sample("whatsapp_send_error_131047"))])
    httpserver.expect_request("/v26.0/1/messages", method="POST").respond_with_handler(handler)
    with pytest.raises(GraphApiError) as info:
        client.send_message("1", {"type": "text"})
    assert (len(calls), info.value.code, info.value.retryable) == (1, 131047, False)


def test_upload_media_sends_multipart(httpserver, client):
    received = []

    def handler(request):
        received.append((request.form.to_dict(), {k: (f.filename, f.read(), f.mimetype)
                                                  for k, f in request.files.items()}))
        return Response(json.dumps({"id": "media-1"}), content_type="application/json")

    httpserver.expect_request("/v26.0/1/media", method="POST").respond_with_handler(handler)
    assert client.upload_media("1", b"%PDF-1.4", "application/pdf", "quote.pdf") == "media-1"
    assert received == [({"messaging_product": "whatsapp", "type": "application/pdf"},
                         {"file": ("quote.pdf", b"%PDF-1.4", "application/pdf")})]


def test_message_templates_follow_paging(httpserver, client):
    second_page = httpserver.url_for("/v26.0/waba/message_templates") + "?after=CURSOR2"
    httpserver.expect_ordered_request("/v26.0/waba/message_templates", query_string={
        "fields": "name,status,category,language,components,parameter_format,quality_score,rejected_reason",
        "limit": "100"},
    ).respond_with_json({"data": [{"name": "a"}], "paging": {"cursors": {"after": "CURSOR2"}, "next": second_page}})
    httpserver.expect_ordered_request("/v26.0/waba/message_templates", query_string={"after": "CURSOR2"}) \
        .respond_with_json({"data": [{"name": "b"}], "paging": {"cursors": {"before": "CURSOR2"}}})
    assert [t["name"] for t in client.message_templates("waba")] == ["a", "b"]
    httpserver.check_assertions()


def test_get_lead_asks_for_the_lead_fields(httpserver, client, load_sample):
    httpserver.expect_request("/v26.0/1234567890123456", headers={"Authorization": f"Bearer {TOKEN}"}) \
        .respond_with_json(load_sample("leadgen_lead"))
    assert client.get_lead("1234567890123456")["campaign_name"] == "Q4 Gold plan leads"
    fields = httpserver.log[0][0].args["fields"].split(",")
    assert {"id", "created_time", "ad_id", "form_id", "platform", "field_data", "campaign_name",
            "custom_disclaimer_responses"} <= set(fields)


def test_form_lead_pages_follow_the_after_cursor_with_time_filter(httpserver, client, load_sample):
    page1, page2 = load_sample("leadgen_form_leads_page1"), load_sample("leadgen_form_leads_page2")
    httpserver.expect_ordered_request("/v26.0/987654321098765/leads").respond_with_json(page1)
    # The token Meta puts in ``next`` is never sent in a URL: the client authenticates with its header.
    httpserver.expect_ordered_request("/v26.0/987654321098765/leads",
                                      headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_json(page2)
    pages = list(client.form_lead_pages("987654321098765", since=1732000000, page_size=3))
    assert [([lead["id"][-3:] for lead in leads], after) for leads, after in pages] == [
        (["500", "501", "502"], "QVFIUmN1c3RfcGFnZTE"), (["503", "504"], None)]
    first, second = httpserver.log[0][0].args, httpserver.log[1][0].args
    assert json.loads(first["filtering"]) == [
        {"field": "time_created", "operator": "GREATER_THAN", "value": 1732000000}]
    assert (first["limit"], "after" in first) == ("3", False)
    assert (second["after"], second["filtering"], second["limit"]) == ("QVFIUmN1c3RfcGFnZTE", first["filtering"], "3")
    assert "access_token" not in second
    httpserver.check_assertions()


def test_form_lead_pages_resume_from_a_cursor(httpserver, client, load_sample):
    httpserver.expect_request("/v26.0/987654321098765/leads").respond_with_json(
        load_sample("leadgen_form_leads_page2"))
    pages = list(client.form_lead_pages("987654321098765", after="QVFIUmN1c3RfcGFnZTE"))
    assert [after for _leads, after in pages] == [None]
    assert httpserver.log[0][0].args["after"] == "QVFIUmN1c3RfcGFnZTE"


def test_form_leads_stop_on_empty_page_without_filter(httpserver, client):
    httpserver.expect_request("/v26.0/9/leads").respond_with_json({"data": [], "paging": {
        "cursors": {"after": "X"}, "next": httpserver.url_for("/v26.0/9/leads") + "?after=X"}})
    assert list(client.form_lead_pages("9")) == [([], None)]
    assert "filtering" not in httpserver.log[0][0].args
    assert len(httpserver.log) == 1


@pytest.mark.parametrize("code", [4, 17, 32, 613])
def test_lead_rate_limits_are_retried(httpserver, client, code):
    handler, calls = _graph_error_handler([(400, {"error": {"code": code, "message": "limit"}}),
                                           (200, {"id": "1", "field_data": []})])
    httpserver.expect_request("/v26.0/1").respond_with_handler(handler)
    assert client.get_lead("1")["id"] == "1"
    assert len(calls) == 2


@pytest.mark.parametrize("code", [102, 190, 10, 200, 283])
def test_token_and_permission_errors_need_an_admin(httpserver, client, code):
    handler, calls = _graph_error_handler([(400, {"error": {"code": code, "message": "refused"}})])
    httpserver.expect_request("/v26.0/1").respond_with_handler(handler)
    with pytest.raises(GraphApiError) as info:
        client.get_lead("1")
    assert (len(calls), info.value.retryable, info.value.needs_admin) == (1, False, True)


def test_leadgen_forms_of_a_page(httpserver, client):
    httpserver.expect_request("/v26.0/104729358201746/leadgen_forms", query_string={
        "fields": "id,name,status,questions,locale", "limit": "100"}).respond_with_json(
        {"data": [{"id": "987654321098765", "name": "Gold", "status": "ACTIVE"}], "paging": {"cursors": {}}})
    assert [form["id"] for form in client.leadgen_forms("104729358201746")] == ["987654321098765"]
