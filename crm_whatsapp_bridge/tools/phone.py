"""Phone helpers for WhatsApp ids (``wa_id``: the number's digits, no ``+``)."""

import phonenumbers


def wa_id_to_e164(wa_id):
    """Return the E.164 form of a WhatsApp id, or ``None`` when it is no phone number.

    WhatsApp ids are international numbers without the leading ``+``; phonenumbers
    validates the country code and drops formatting characters.
    """
    digits = "".join(ch for ch in str(wa_id or "") if ch.isdigit())
    if not digits:
        return None
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def e164_to_wa_id(e164):
    """Return the digits Meta expects in ``to`` for an E.164 number."""
    return "".join(ch for ch in str(e164 or "") if ch.isdigit())


def to_e164(raw, region=None):
    """E.164 form of a number typed by a person (as in a lead form), or ``None``.

    Numbers without a country code are read as numbers of ``region`` (an ISO
    country code such as ``"JO"``); ``00`` international prefixes are accepted.
    """
    text = str(raw or "").strip()
    if not any(ch.isdigit() for ch in text):
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
