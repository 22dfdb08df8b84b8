import pytest

from crm_whatsapp_bridge.tools.phone import e164_to_wa_id, wa_id_to_e164


@pytest.mark.parametrize("wa_id, e164", [
    ("15550101234", "+15550101234"),
    ("966501234567", "+966501234567"),
    ("+44 7700 900123", "+447700900123"),
    ("5511987654321", "+5511987654321"),  # Brazil mobile with the ninth digit
    (201001234567, "+201001234567"),
])
def test_wa_id_to_e164(wa_id, e164):
    assert wa_id_to_e164(wa_id) == e164


@pytest.mark.parametrize("wa_id", ["", None, "abc", "12", "999999999999999999"])
def test_not_a_number(wa_id):
    assert wa_id_to_e164(wa_id) is None


def test_e164_to_wa_id():
    assert e164_to_wa_id("+966 50 123 4567") == "966501234567"
    assert e164_to_wa_id(None) == ""
