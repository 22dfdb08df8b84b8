import hashlib
import hmac

from crm_whatsapp_bridge.tools.signature import (
    compute_signature,
    is_valid_signature,
    is_valid_verify_token,
)

SECRET = "app-secret"
BODY = '{"text": "مرحبا 👋"}'.encode()


def test_signature_matches_hmac_sha256_of_raw_bytes():
    expected = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, BODY) == expected
    assert is_valid_signature(SECRET, BODY, expected)


def test_reencoded_body_does_not_validate():
    # Re-serialising with \u escapes changes the bytes, so the signature must fail.
    reencoded = b'{"text": "\\u0645\\u0631\\u062d\\u0628\\u0627 \\ud83d\\udc4b"}'
    assert not is_valid_signature(SECRET, reencoded, compute_signature(SECRET, BODY))


def test_rejects_missing_wrong_or_malformed_headers():
    good = compute_signature(SECRET, BODY)
    assert not is_valid_signature(SECRET, BODY, None)
    assert not is_valid_signature(SECRET, BODY, "")
    assert not is_valid_signature(SECRET, BODY, good.replace("sha256=", "sha1="))
    assert not is_valid_signature(SECRET, BODY, good[:-1] + ("0" if good[-1] != "0" else "1"))
    assert not is_valid_signature("other-secret", BODY, good)
    assert not is_valid_signature("", BODY, compute_signature("", BODY))
    assert not is_valid_signature(SECRET, BODY, "sha256=é")


def test_verify_token():
    assert is_valid_verify_token("tok", "tok")
    assert not is_valid_verify_token("tok", "tok2")
    assert not is_valid_verify_token("", "")
    assert not is_valid_verify_token("tok", None)
