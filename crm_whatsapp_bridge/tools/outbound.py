"""Cloud API message objects for what salespeople send, and message templates.

Plain Python: the models decide what to send, these functions give it Meta's shape
(``POST /<phone-number-id>/messages``) and read Meta's template definitions.
"""

import re
from dataclasses import dataclass, field

import requests
from urllib3.exceptions import NewConnectionError

from .graph_client import GraphApiError, GraphClient

PLACEHOLDER_RE = re.compile(r"{{\s*([A-Za-z0-9_]+)\s*}}")
# Template header formats whose file the salesperson gives in the composer.
MEDIA_HEADERS = ("IMAGE", "VIDEO", "DOCUMENT")

# What the Cloud API accepts per media message type; anything else goes as a document.
MEDIA_MIME_TYPES = {
    "image": {"image/jpeg", "image/png"},
    "video": {"video/mp4", "video/3gpp"},
    "audio": {"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"},
}


def media_kind(mime_type):
    """The message type (image, video, audio, document) a file of this MIME type is sent as."""
    mime_type = (mime_type or "").split(";")[0].strip().lower()
    for kind, accepted in MEDIA_MIME_TYPES.items():
        if mime_type in accepted:
            return kind
    return "document"


def recipient(e164):
    """Meta's ``to``: the international number with digits only."""
    return re.sub(r"\D", "", e164 or "")


def _envelope(to, message_type, content, reply_to=None):
    message = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient(to),
        "type": message_type,
        message_type: content,
    }
    if reply_to:
        message["context"] = {"message_id": reply_to}
    return message


def text_message(to, body, reply_to=None):
    """A free-form text message (only inside the 24-hour customer-service window)."""
    return _envelope(to, "text", {"body": body, "preview_url": False}, reply_to)


def media_message(to, kind, media_id, caption=None, filename=None, reply_to=None):
    """An image/video/audio/document message of an uploaded media id."""
    content = {"id": media_id}
    if caption and kind in ("image", "video", "document"):
        content["caption"] = caption
    if filename and kind == "document":
        content["filename"] = filename
    return _envelope(to, kind, content, reply_to)


def placeholders(text):
    """The distinct ``{{n}}`` / ``{{name}}`` keys of a template text, in order of appearance."""
    seen = []
    for key in PLACEHOLDER_RE.findall(text or ""):
        if key not in seen:
            seen.append(key)
    return seen


def render(text, values):
    """The text with each placeholder replaced by its value (unknown ones left visible)."""
    return PLACEHOLDER_RE.sub(lambda match: str(values.get(match.group(1), match.group(0))), text or "")


@dataclass
class TemplateDefinition:
    """A message template as the WABA's ``message_templates`` edge describes it."""

    name: str
    language: str
    category: str = ""
    status: str = ""
    template_id: str = ""
    parameter_format: str = "POSITIONAL"
    header: str = ""
    header_format: str = ""
    body: str = ""
    footer: str = ""
    buttons: list = field(default_factory=list)
    url_button_index: int = -1  # position of the button whose URL ends with a variable (-1: none)
    url_button_url: str = ""
    quality: str = ""  # GREEN, YELLOW, RED or UNKNOWN when Meta gives it
    rejected_reason: str = ""
    unsupported_reason: str = ""

    @property
    def placeholders(self):
        return placeholders(self.body)


def parse_template(raw):
    """Build a :class:`TemplateDefinition` from one item of ``message_templates``."""
    definition = TemplateDefinition(
        name=raw.get("name") or "",
        language=raw.get("language") or "",
        category=raw.get("category") or "",
        status=raw.get("status") or "",
        template_id=str(raw.get("id") or ""),
        parameter_format=raw.get("parameter_format") or "POSITIONAL",
        quality=str((raw.get("quality_score") if isinstance(raw.get("quality_score"), dict) else {}).get("score")
                    or "").upper(),
        rejected_reason=str(raw.get("rejected_reason") or "") if raw.get("rejected_reason") != "NONE" else "",
    )
    reasons = []
    for component in raw.get("components") or []:
        kind = (component.get("type") or "").upper()
        if kind == "HEADER":
            definition.header_format = (component.get("format") or "TEXT").upper()
            definition.header = component.get("text") or ""
            if definition.header_format not in ("TEXT", *MEDIA_HEADERS):
                reasons.append(f"{definition.header_format.lower()} header")
            elif placeholders(definition.header):
                reasons.append("header with variables")
        elif kind == "BODY":
            definition.body = component.get("text") or ""
        elif kind == "FOOTER":
            definition.footer = component.get("text") or ""
        elif kind == "BUTTONS":
            for index, button in enumerate(component.get("buttons") or []):
                definition.buttons.append(button.get("text") or "")
                if not placeholders(button.get("url") or ""):
                    continue
                if definition.url_button_index >= 0:
                    reasons.append("several buttons with a variable URL")
                definition.url_button_index, definition.url_button_url = index, button["url"]
    definition.unsupported_reason = ", ".join(reasons)
    return definition


def template_message(to, name, language, values=None, parameter_format="POSITIONAL", body="",
                     header_media=None, url_button=None):
    """A template message whose body placeholders are filled from ``values`` (key -> text).

    ``header_media`` is ``(kind, media_id, filename)`` for an image, video or document
    header; ``url_button`` is ``(button index, text)`` for a button whose URL ends with
    a variable.
    """
    content = {"name": name, "language": {"code": language}}
    components = []
    if header_media:
        kind, media_id, filename = header_media
        media = {"id": media_id}
        if kind == "document" and filename:
            media["filename"] = filename
        components.append({"type": "header", "parameters": [{"type": kind, kind: media}]})
    keys = placeholders(body)
    if keys:
        parameters = []
        for key in keys:
            parameter = {"type": "text", "text": str((values or {}).get(key, ""))}
            if parameter_format == "NAMED":
                parameter["parameter_name"] = key
            parameters.append(parameter)
        components.append({"type": "body", "parameters": parameters})
    if url_button:
        index, text = url_button
        components.append({"type": "button", "sub_type": "url", "index": str(index),
                           "parameters": [{"type": "text", "text": str(text)}]})
    if components:
        content["components"] = components
    return _envelope(to, "template", content)


class SendOutcomeUnknown(GraphApiError):
    """The message request left this server but no answer came back: Meta may have accepted it.

    The Cloud API has no idempotency key, so sending again could deliver the message
    twice: such a send is never retried automatically.
    """


def _never_reached_meta(exc):
    """True when the request certainly never left this server (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


class CloudApiClient(GraphClient):
    """Graph client for sending messages: a lost answer to a message request is not retried.

    Throttling and temporary errors that Meta *answered* are retried as usual (Meta
    refused the message, so nothing was delivered). A timeout or a dropped connection
    after the request was sent is ambiguous: it raises :class:`SendOutcomeUnknown`.
    """

    def _send_once(self, method, url, **kwargs):
        try:
            return super()._send_once(method, url, **kwargs)
        except GraphApiError as exc:
            cause = exc.__cause__
            if (method == "POST" and url.endswith("/messages")
                    and isinstance(cause, (requests.Timeout, requests.ConnectionError))
                    and not _never_reached_meta(cause)):
                raise SendOutcomeUnknown(f"No answer from the Cloud API: {type(cause).__name__}") from cause
            raise
