import pytest

from crm_whatsapp_bridge.tools import outbound


@pytest.mark.parametrize("mime, kind", [
    ("image/jpeg", "image"), ("image/png", "image"), ("video/mp4", "video"), ("audio/ogg; codecs=opus", "audio"),
    ("application/pdf", "document"), ("image/gif", "document"), ("", "document"),
])
def test_media_kind(mime, kind):
    assert outbound.media_kind(mime) == kind


def test_recipient_keeps_digits_only():
    assert outbound.recipient("+966 50 123 4567") == "966501234567"


def test_text_message_with_reply_context():
    assert outbound.text_message("+15550101234", "Hello", reply_to="wamid.IN1") == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "15550101234", "type": "text",
        "text": {"body": "Hello", "preview_url": False}, "context": {"message_id": "wamid.IN1"}}


def test_media_message_caption_and_filename_only_where_allowed():
    document = outbound.media_message("1555", "document", "m1", caption="Quote", filename="q.pdf")
    assert document["document"] == {"id": "m1", "caption": "Quote", "filename": "q.pdf"}
    audio = outbound.media_message("1555", "audio", "m2", caption="ignored", filename="a.ogg")
    assert audio["audio"] == {"id": "m2"}


def test_placeholders_and_render():
    body = "Hi {{1}}, your order {{2}} ships {{ 3 }}. Thanks {{1}}!"
    assert outbound.placeholders(body) == ["1", "2", "3"]
    assert outbound.render(body, {"1": "Layla", "2": "#7", "3": "today"}) == \
        "Hi Layla, your order #7 ships today. Thanks Layla!"
    assert outbound.render("{{1}} and {{9}}", {"1": "x"}) == "x and {{9}}"


def test_template_message_positional_and_named():
    positional = outbound.template_message("+1555", "quote", "ar", {"1": "Layla", "2": "Q-7"},
                                           body="Hello {{1}}, quote {{2}}")
    assert positional["template"] == {"name": "quote", "language": {"code": "ar"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "Layla"}, {"type": "text", "text": "Q-7"}]}]}
    named = outbound.template_message("+1555", "greet", "en_US", {"first_name": "Omar"}, "NAMED",
                                      body="Hi {{first_name}}")
    assert named["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "Omar", "parameter_name": "first_name"}]
    plain = outbound.template_message("+1555", "hello_world", "en_US", body="Hello World")
    assert "components" not in plain["template"]


def test_parse_template_reads_components_and_flags_what_cannot_be_filled():
    definition = outbound.parse_template({
        "name": "order_update", "language": "ar", "status": "APPROVED", "category": "UTILITY", "id": "42",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
            {"type": "BODY", "text": "مرحبا {{1}}، طلبك {{2}} في الطريق"},
            {"type": "FOOTER", "text": "Acme"},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://x.test/{{1}}"},
                                            {"type": "QUICK_REPLY", "text": "Call me"}]},
        ]})
    assert (definition.name, definition.language, definition.status, definition.template_id) == \
        ("order_update", "ar", "APPROVED", "42")
    assert definition.placeholders == ["1", "2"]
    assert (definition.header, definition.footer, definition.buttons) == ("Order {{1}}", "Acme", ["Track", "Call me"])
    assert definition.unsupported_reason == "header with variables"
    assert (definition.url_button_index, definition.url_button_url) == (0, "https://x.test/{{1}}")
    image = outbound.parse_template({"name": "promo", "language": "en", "components": [
        {"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "Sale"}]})
    assert (image.unsupported_reason, image.header_format) == ("", "IMAGE")
    location = outbound.parse_template({"name": "visit", "language": "en", "components": [
        {"type": "HEADER", "format": "LOCATION"}, {"type": "BODY", "text": "Come"}]})
    assert location.unsupported_reason == "location header"
    two_urls = outbound.parse_template({"name": "links", "language": "en", "components": [
        {"type": "BODY", "text": "Links"},
        {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "A", "url": "https://a.test/{{1}}"},
                                        {"type": "URL", "text": "B", "url": "https://b.test/{{1}}"}]}]})
    assert two_urls.unsupported_reason == "several buttons with a variable URL"


def test_template_message_with_media_header_and_url_button():
    message = outbound.template_message(
        "+15550101234", "invoice_ready", "ar", {"1": "Layla"}, body="Hi {{1}}",
        header_media=("document", "MEDIA-9", "invoice.pdf"), url_button=(1, "INV-7"))
    assert message["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "document",
                                           "document": {"id": "MEDIA-9", "filename": "invoice.pdf"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Layla"}]},
        {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "INV-7"}]},
    ]
    image = outbound.template_message("+1555", "promo", "en", header_media=("image", "M-1", "a.jpg"))
    assert image["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "image", "image": {"id": "M-1"}}]}]


def test_parse_template_reads_quality_and_rejection():
    red = outbound.parse_template({"name": "promo", "language": "en", "status": "REJECTED",
                                   "rejected_reason": "INVALID_FORMAT", "quality_score": {"score": "red"},
                                   "components": [{"type": "BODY", "text": "Sale"}]})
    assert (red.quality, red.rejected_reason) == ("RED", "INVALID_FORMAT")
    plain = outbound.parse_template({"name": "promo", "language": "en", "rejected_reason": "NONE",
                                     "quality_score": "GREEN"})
    assert (plain.quality, plain.rejected_reason) == ("", "")
