import logging

from odoo import http
from odoo.http import request

from ..tools.leadgen import split_leadgen_notification
from ..tools.payload import MALFORMED, PayloadError, load_json, split_notification
from ..tools.signature import is_valid_signature, is_valid_verify_token

_logger = logging.getLogger(__name__)

APP_SECRET_PARAM = "crm_whatsapp_bridge.meta_app_secret"
VERIFY_TOKEN_PARAM = "crm_whatsapp_bridge.meta_verify_token"


def _text(body, status):
    return request.make_response(body, status=status, headers=[("Content-Type", "text/plain; charset=utf-8")])


def _json(payload, status):
    return request.make_json_response(payload, status=status)


def _get_param(name):
    return request.env["ir.config_parameter"].sudo().get_param(name)


class MetaWebhookController(http.Controller):
    """Meta webhooks: verify, store in the inbox, trigger the cron, answer. Nothing else.

    The routes use ``auth="none"``: Meta authenticates with the payload signature, not
    with a session, so no user is set up; the only ORM reads are two sudo'ed system
    parameters and the cron trigger.
    """

    @http.route("/crm/webhook/whatsapp", type="http", auth="none", methods=["GET"],
                csrf=False, save_session=False)
    def whatsapp_verify(self, **params):
        """Subscription handshake: echo ``hub.challenge`` when the verify token matches."""
        return self._verify_subscription(params)

    # auth="none" routes default to a read-only cursor; this one writes the inbox.
    @http.route("/crm/webhook/whatsapp", type="http", auth="none", methods=["POST"],
                csrf=False, save_session=False, readonly=False)
    def whatsapp_notification(self):
        """Store every message and status of a signed notification in the inbox."""
        return self._receive("whatsapp", split_notification)

    @http.route("/crm/webhook/meta", type="http", auth="none", methods=["GET"],
                csrf=False, save_session=False)
    def meta_verify(self, **params):
        """Subscription handshake of the Page (Lead Ads) webhook, same rule as WhatsApp's."""
        return self._verify_subscription(params)

    @http.route("/crm/webhook/meta", type="http", auth="none", methods=["POST"],
                csrf=False, save_session=False, readonly=False)
    def meta_notification(self):
        """Store every ``leadgen`` change of a signed Page notification in the inbox."""
        return self._receive("meta", split_leadgen_notification)

    def _receive(self, source, split):
        """Verify, split into inbox events with ``split``, store them, trigger the cron, answer."""
        # Kept cached: Odoo replays the request after a serialization failure.
        body = request.httprequest.get_data()
        if not self._is_signed_by_meta(body):
            return _json({"error": "invalid signature"}, 403)
        # Only a body that is not a notification at all is refused (Meta retries it, and
        # it cannot be Meta's); what is malformed inside one is kept as a malformed event,
        # which goes dead and is shown to the admins, and its neighbours are stored.
        try:
            events = split(load_json(body))
        except PayloadError as exc:
            _logger.warning("Rejected malformed %s webhook: %s", source, exc)
            return _json({"error": "malformed notification"}, 400)
        malformed = sum(event.event_type == MALFORMED for event in events)
        if malformed:
            _logger.warning("%s webhook: %s of %s event(s) malformed, stored for the admins",
                            source, malformed, len(events))
        Inbox = request.env["crm.inbox.event"]
        new_count = Inbox._store_events(source, events)
        if new_count:
            Inbox._trigger_processing()
        return _json({"received": len(events), "new": new_count}, 200)

    def _verify_subscription(self, params):
        expected = _get_param(VERIFY_TOKEN_PARAM)
        challenge = params.get("hub.challenge", "")
        if (params.get("hub.mode") == "subscribe" and challenge
                and is_valid_verify_token(expected, params.get("hub.verify_token"))):
            return _text(challenge, 200)
        _logger.warning("Webhook subscription handshake refused (wrong mode or verify token)")
        return _text("Forbidden", 403)

    def _is_signed_by_meta(self, body):
        secret = _get_param(APP_SECRET_PARAM)
        if not secret:
            _logger.error("Webhook refused: the Meta app secret is not set in Settings > CRM")
            return False
        if not is_valid_signature(secret, body, request.httprequest.headers.get("X-Hub-Signature-256")):
            _logger.warning("Webhook refused: missing or invalid X-Hub-Signature-256 from %s",
                            request.httprequest.remote_addr)
            return False
        return True
