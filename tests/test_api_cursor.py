"""The cursor of GET /crm/leads: a (commit marker, id) position, round-tripped or refused by name."""

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_whatsapp_bridge.tools.api_params import (
    MAX_ID,
    MAX_MARKER,
    ApiError,
    decode_cursor,
    encode_cursor,
)

markers = st.integers(min_value=0, max_value=MAX_MARKER)
record_ids = st.integers(min_value=0, max_value=MAX_ID)


def b64(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def assert_refused(cursor):
    with pytest.raises(ApiError) as caught:
        decode_cursor(cursor)
    error = caught.value
    assert (error.status, error.code) == (400, "invalid_parameter")
    assert error.message.startswith("cursor:")


@given(markers, record_ids)
def test_encode_decode_round_trip(marker, record_id):
    cursor = encode_cursor(marker, record_id)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor) == (marker, record_id)


@given(st.text(max_size=120))
def test_any_string_is_a_position_or_a_named_error(cursor):
    try:
        position = decode_cursor(cursor)
    except ApiError as error:
        assert (error.status, error.code) == (400, "invalid_parameter")
        assert error.message.startswith("cursor:")
    else:
        assert position is None or (
            isinstance(position, tuple) and len(position) == 2
            and 0 <= position[0] <= MAX_MARKER and 0 <= position[1] <= MAX_ID)


@given(st.lists(st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.text(max_size=5)),
                max_size=4))
def test_any_json_list_is_a_position_or_a_named_error(items):
    cursor = b64(json.dumps(items))
    try:
        position = decode_cursor(cursor)
    except ApiError as error:
        assert error.message.startswith("cursor:")
    else:
        assert position == tuple(items)
        assert all(type(item) is int for item in items)


def test_absent_cursor_is_the_start():
    assert decode_cursor(None) is None
    assert decode_cursor("") is None


@pytest.mark.parametrize("cursor", [
    "garbage", "e30", "WzFd", "!!!", "é", "a" * 65, "=" * 8,
    b64('["2026-11-24T18:38:24.548708",174]'),  # a cursor of the former (write_date, id) format
    b64("[Infinity,1]"), b64("[1,Infinity]"), b64("[NaN,1]"), b64("[-Infinity,1]"),
    b64("[1e400,1]"), b64("[1,1e400]"), b64("[1.0,1]"), b64("[1,2.5]"),
    b64(f"[{10**30},1]"), b64(f"[1,{10**30}]"), b64(f"[1,{MAX_ID + 1}]"), b64(f"[{MAX_MARKER + 1},1]"),
    b64("[-1,1]"), b64("[1,-1]"), b64("[true,1]"), b64("[1,null]"), b64("[1,2,3]"), b64("{}"), b64("[]"),
    b64('["1",1]'), b64("[[1],1]"), b64("[" * 30), b64("[1,1] x"), b64("[1,\u00001]"),
])
def test_foreign_and_overflowing_cursors_are_refused(cursor):
    assert_refused(cursor)
