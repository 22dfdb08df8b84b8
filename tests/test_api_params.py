from datetime import datetime

import pytest

from crm_whatsapp_bridge.tools.api_params import (
    ApiError,
    check_text,
    like_literal,
    median,
    parse_choice,
    parse_datetime,
    parse_id,
    parse_json_object,
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
    for raw in ("0", "501", "-3", "ten", "1.5", "²", "٥", " 5", "1_0", "9" * 5000):
        error = error_of(parse_limit, raw)
        assert (error.status, error.code) == (400, "invalid_parameter")
        assert error.message.startswith("limit:")


def test_ids_must_be_positive_integers():
    assert parse_id("team_id", "42") == 42
    assert parse_id("team_id", None) is None
    assert parse_id("team_id", "2147483647") == 2147483647
    for raw in ("0", "-1", "x", "4.2", "²", "١٢", "+3", "2147483648", "9" * 5000, "00000000001"):
        assert error_of(parse_id, "team_id", raw).message.startswith("team_id:")


def test_datetimes_are_naive_utc():
    assert parse_datetime("d", "2026-11-01") == datetime(2026, 11, 1)
    assert parse_datetime("d", "2026-11-01T08:30:00Z") == datetime(2026, 11, 1, 8, 30)
    assert parse_datetime("d", "2026-11-01T11:30:00+03:00") == datetime(2026, 11, 1, 8, 30)
    assert parse_datetime("d", "2026-11-01T08:30:00") == datetime(2026, 11, 1, 8, 30)
    assert parse_datetime("d", None) is None
    assert error_of(parse_datetime, "created_after", "last week").message.startswith("created_after:")
    assert parse_datetime("d", "0001-01-01T00:00:00-01:00") == datetime(1, 1, 1, 1)
    for raw in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01"):
        assert "years 1 to 9999" in error_of(parse_datetime, "created_after", raw).message


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


def test_like_literal_matches_only_itself():
    assert like_literal("\\") == "\\\\"
    assert like_literal("50%_off") == "50\\%\\_off"
    assert like_literal("plain") == "plain"


def test_surrogates_are_refused_by_name_anywhere_in_a_value():
    assert error_of(check_text, {"page_ids": ["1", "\ud800"]}).message.startswith("page_ids:")
    assert error_of(check_text, {"since": {"\udfff": 1}}).message.startswith("since:")
    assert "\\ud800" in error_of(check_text, {"\ud800": 1}).message


@pytest.mark.parametrize(("raw", "code"), [
    (b"{", "invalid_json"), (b"[1]", "invalid_json"), (b'{"since": NaN}', "invalid_json"),
    (b'{"full": Infinity}', "invalid_json"), (b"\xff", "invalid_json"),
    (b'{"a": ' + b"[" * 100000 + b"]" * 100000 + b"}", "invalid_json"),
    (b'{"since": "\\u0000"}', "invalid_parameter"), (b'{"page_ids": ["\\ud800"]}', "invalid_parameter"),
])
def test_json_bodies(raw, code):
    error = error_of(parse_json_object, raw)
    assert (error.status, error.code) == (400, code)


def test_json_body_values():
    assert parse_json_object(b"  ") == {}
    assert parse_json_object(b'{"full": true}') == {"full": True}
    assert parse_json_object(b'{"since": 1e400}') == {"since": float("inf")}  # the route refuses it by name
