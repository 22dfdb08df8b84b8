import traceback

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_whatsapp_bridge.tools.analytics import AnalyticsError, Ga4Client
from crm_whatsapp_bridge.tools.urls import base_url_problem

SECRET = "ga4-secret-never-in-errors"


@pytest.mark.parametrize("url", [
    "https://www.google-analytics.com",
    "https://graph.facebook.com/v26.0",
    "https://sgtm.example.com:8443/base",
    "http://127.0.0.1:8089",
    "http://localhost:9",
    "http://[::1]:9",
])
def test_valid_base_urls(url):
    assert base_url_problem(url) is None


@pytest.mark.parametrize("url, problem", [
    ("www.google-analytics.com", "scheme"),
    ("ftp://example.com", "scheme"),
    ("https://", "host"),
    ("https:///path", "host"),
    ("http://example.com", "cleartext"),
    ("http://10.0.0.5", "cleartext"),
    ("https://user:secret@example.com", "credentials"),
    ("https://example.com/mp?api_secret=x", "query"),
    ("https://example.com#frag", "query"),
    ("https://example.com:port", "invalid"),
    ("https://[::1", "invalid"),
    ("", "scheme"),
])
def test_invalid_base_urls(url, problem):
    assert base_url_problem(url) == problem


@given(st.text(max_size=200))
def test_any_text_gets_an_answer_and_accepted_ones_are_https_or_loopback(text):
    problem = base_url_problem(text)
    if problem is None:
        stripped = text.strip()
        assert stripped.startswith(("https://", "http://"))
        assert "?" not in stripped and "#" not in stripped and "@" not in stripped


@given(st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,5}){1,2}", fullmatch=True))
def test_any_https_host_is_accepted_and_its_bare_name_refused(host):
    assert base_url_problem(f"https://{host}") is None
    assert base_url_problem(host) == "scheme"


def test_ga4_client_error_for_a_url_without_scheme_hides_the_secret():
    client = Ga4Client("G-TEST", SECRET, "www.google-analytics.com", max_attempts=1)
    with pytest.raises(AnalyticsError) as caught:
        client.send({"client_id": "1.2", "events": []})
    assert not caught.value.retryable
    assert "MissingSchema" in str(caught.value)
    # Nothing chained either: a logged traceback shows no URL.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert SECRET not in "".join(traceback.format_exception(caught.value))


def test_ga4_client_scrubs_a_reason_echoing_the_secret(httpserver):
    httpserver.expect_request("/mp/collect").respond_with_data(b"", status=400)
    client = Ga4Client("G-TEST", SECRET, httpserver.url_for("/"), max_attempts=1)
    assert client._scrub(f"bad request to /mp/collect?api_secret={SECRET}") == \
        "bad request to /mp/collect?api_secret=***"
    with pytest.raises(AnalyticsError) as caught:
        client.send({"client_id": "1.2", "events": []})
    assert caught.value.http_status == 400
    assert SECRET not in str(caught.value)
