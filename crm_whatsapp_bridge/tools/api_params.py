"""Query parameters and cursors of the JSON API (``/crm/leads``, ``/crm/stats``).

Plain Python: the controller turns :class:`ApiError` into a JSON error answer.
"""

import base64
import binascii
import json
import re
from datetime import date, datetime, time, timezone

from .payload import text_problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
LEAD_TYPES = ("lead", "opportunity")
MAX_ID = 2 ** 31 - 1  # PostgreSQL's integer, the type of every record id
# ASCII digits only: str.isdigit() also takes "²" or "٣", which int() refuses or reads.
SMALL_INTEGER = re.compile(r"[0-9]{1,10}")
# A cursor holds a commit marker (a PostgreSQL bigint) and a record id (a PostgreSQL integer).
MAX_MARKER = 2**63 - 1
MAX_CURSOR_LENGTH = 64


class ApiError(Exception):
    """An error the API answers with ``{"error": {"code", "message"}}`` and an HTTP status."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def as_json(self):
        return {"error": {"code": self.code, "message": self.message}}


def bad_parameter(name, message):
    return ApiError(400, "invalid_parameter", f"{name}: {message}")


def _holds_unstorable_text(value):
    """True when a string anywhere in a JSON value has a NUL character or a lone surrogate.

    Walks with a stack, not recursion: a JSON body can be nested as deep as Python's parser goes.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if text_problem(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_text(params):
    """Refuse parameters PostgreSQL cannot hold (NUL characters, lone surrogates), naming the first one."""
    for name, value in params.items():
        if text_problem(name) or _holds_unstorable_text(value):
            shown = name.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")
            raise bad_parameter(shown, "must not contain NUL characters or lone UTF-16 surrogates")


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def parse_json_object(raw):
    """The JSON object of a request body (bytes); an empty body is an empty object.

    Refused with ``invalid_json``: what is not strict JSON (NaN, Infinity), is nested
    deeper than Python parses, or is not an object; with ``invalid_parameter``: text
    PostgreSQL cannot hold.
    """
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    check_text(body)
    return body


def small_integer(raw):
    """The value of at most 10 ASCII digits, else None (no sign, space, "_" or other digits)."""
    return int(raw) if isinstance(raw, str) and SMALL_INTEGER.fullmatch(raw) else None


def parse_limit(raw):
    """``limit``: 1 to 500, 50 when absent."""
    if raw in (None, ""):
        return DEFAULT_LIMIT
    limit = small_integer(raw)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise bad_parameter("limit", f"must be an integer between 1 and {MAX_LIMIT}")
    return limit


def parse_id(name, raw):
    """A positive record id, or None when the parameter is absent."""
    if raw in (None, ""):
        return None
    record_id = small_integer(raw)
    if not record_id or record_id > MAX_ID:
        raise bad_parameter(name, f"must be a positive integer id, at most {MAX_ID}")
    return record_id


def like_literal(text):
    """``text`` as a LIKE pattern matching exactly itself (``\\``, ``%`` and ``_`` escaped)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def parse_datetime(name, raw):
    """An ISO 8601 date or date-time as a naive UTC datetime (Odoo's storage), or None.

    A date alone means midnight UTC; an offset is converted to UTC.
    """
    if raw in (None, ""):
        return None
    value = raw.strip().replace("Z", "+00:00")
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time.min)
        parsed = datetime.fromisoformat(value)
        # An offset can carry the moment out of Python's years 1-9999 (0001-01-01T00:00+01:00).
        return parsed.astimezone(timezone.utc).replace(tzinfo=None) if parsed.tzinfo else parsed
    except OverflowError:
        raise bad_parameter(name, "is outside the years 1 to 9999 once converted to UTC") from None
    except ValueError:
        raise bad_parameter(name, "must be an ISO 8601 date or date-time, e.g. 2026-11-01T08:00:00Z") from None


def parse_choice(name, raw, choices):
    if raw in (None, ""):
        return None
    if raw not in choices:
        raise bad_parameter(name, f"must be one of {', '.join(choices)}")
    return raw


def encode_cursor(marker, record_id):
    """An opaque cursor for the keyset position just after (commit marker, id)."""
    raw = json.dumps([marker, record_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor):
    """The (commit marker, id) position of a cursor made by :func:`encode_cursor`, or None.

    Anything else is a 400 naming ``cursor``: base64 or JSON that does not decode, floats,
    ``Infinity``/``NaN``, booleans, and numbers PostgreSQL's bigint marker or integer id cannot hold.
    """
    if cursor in (None, ""):
        return None
    invalid = bad_parameter("cursor", "is not a cursor returned by this API")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        position = json.loads(raw)  # floats, NaN and Infinity are refused below, as non-integers
    except (ValueError, binascii.Error):
        raise invalid from None
    if not (isinstance(position, list) and len(position) == 2 and all(type(n) is int for n in position)
            and 0 <= position[0] <= MAX_MARKER and 0 <= position[1] <= MAX_ID):
        raise invalid
    return tuple(position)


def rate(numerator, denominator):
    """A ratio rounded to 4 decimals, or None when the denominator is zero."""
    return round(numerator / denominator, 4) if denominator else None


def median(values):
    """The median of a list of numbers, or None for an empty list."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
