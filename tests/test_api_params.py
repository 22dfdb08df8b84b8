from datetime import datetime

import pytest

from crm_whatsapp_bridge.tools.api_params import (
    ApiError,
    check_text,
    median,
    parse_choice,
    parse_datetime,
    parse_id,
    parse_limit,
    rate,
)


def error_of(call, *args):
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


def test_limit_defaults_to_50_and_is_bounded():
    assert parse_limit(None) == 50
    assert parse_limit("") == 50
    assert parse_limit("500") == 500
    for raw in ("0", "501", "-3", "ten", "1.5"):
        error = error_of(parse_limit, raw)
        assert (error.status, error.code) == (400, "invalid_parameter")
        assert error.message.startswith("limit:")


def test_ids_must_be_positive_integers():
    assert parse_id("team_id", "42") == 42
    assert parse_id("team_id", None) is None
    for raw in ("0", "-1", "x", "4.2"):
        assert error_of(parse_id, "team_id", raw).message.startswith("team_id:")


def test_datetimes_are_naive_utc():
    assert parse_datetime("d", "2026-11-01") == datetime(2026, 11, 1)
    assert parse_datetime("d", "2026-11-01T08:30:00Z") == datetime(2026, 11, 1, 8, 30)
    assert parse_datetime("d", "2026-11-01T11:30:00+03:00") == datetime(2026, 11, 1, 8, 30)
    assert parse_datetime("d", "2026-11-01T08:30:00") == datetime(2026, 11, 1, 8, 30)
    assert parse_datetime("d", None) is None
    assert error_of(parse_datetime, "created_after", "last week").message.startswith("created_after:")


def test_choice():
    assert parse_choice("type", "lead", ("lead", "opportunity")) == "lead"
    assert parse_choice("type", None, ("lead",)) is None
    assert "lead, opportunity" in error_of(parse_choice, "type", "deal", ("lead", "opportunity")).message


def test_error_json_shape():
    assert ApiError(404, "not_found", "team_id: no record").as_json() == {
        "error": {"code": "not_found", "message": "team_id: no record"}}


def test_rate_and_median():
    assert rate(1, 4) == 0.25
    assert rate(2, 3) == 0.6667
    assert rate(1, 0) is None
    assert median([]) is None
    assert median([300, 60, 100]) == 100
    assert median([60, 300]) == 180


def test_nul_characters_are_refused_by_name():
    check_text({"q": "ok", "limit": "5"})
    assert error_of(check_text, {"q": "ok", "source": "a\x00b"}).message.startswith("source:")
    assert error_of(check_text, {"a\x00": "x"}).status == 400
