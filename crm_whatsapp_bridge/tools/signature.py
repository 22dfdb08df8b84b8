"""Meta webhook signatures (``X-Hub-Signature-256``)."""

import hashlib
import hmac

SIGNATURE_PREFIX = "sha256="


def compute_signature(app_secret, body):
    """Return the ``X-Hub-Signature-256`` header value Meta sends for ``body``."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def is_valid_signature(app_secret, body, header_value):
    """Tell whether ``header_value`` signs the raw ``body`` bytes with ``app_secret``.

    The comparison runs in constant time; a missing secret or header never validates.
    """
    header_value = (header_value or "").strip()
    if not app_secret or not header_value.startswith(SIGNATURE_PREFIX):
        return False
    expected = compute_signature(app_secret, body)
    try:
        return hmac.compare_digest(expected.encode(), header_value.encode("ascii"))
    except UnicodeEncodeError:
        return False


def is_valid_verify_token(expected_token, given_token):
    """Constant-time check of the ``hub.verify_token`` of the subscription handshake."""
    if not expected_token or not given_token:
        return False
    return hmac.compare_digest(expected_token.encode(), given_token.encode())
