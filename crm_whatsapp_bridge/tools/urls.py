"""Checks of the base URLs the addon sends secrets to (Graph API, GA4 / sGTM, BigQuery, OAuth)."""

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost"})


def _is_loopback(host):
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_problem(url):
    """Why ``url`` cannot be a base URL for API requests (a code), or ``None`` when it can.

    A base URL has the ``https`` scheme (``http`` only for this machine, as tests and
    local fakes use), a host, and no user, password, query or fragment: requests built on
    it append a path and their own query, and carry secrets that must not travel in clear.
    """
    try:
        parts = urlsplit((url or "").strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return "invalid"
    if parts.scheme not in ("https", "http"):
        return "scheme"
    if not host:
        return "host"
    if parts.scheme == "http" and not _is_loopback(host):
        return "cleartext"
    if parts.username or parts.password:
        return "credentials"
    if parts.query or parts.fragment:
        return "query"
    return None
