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
