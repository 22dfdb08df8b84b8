from odoo.tests import HttpCase, tagged

from .common import (
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    WebhookClientMixin,
    WhatsappTestMixin,
    encode,
    notification,
    sign,
    text_message,
)

WEBHOOK = "/crm/webhook/whatsapp"


@tagged("post_install", "-at_install")
class TestWhatsappWebhook(WebhookClientMixin, WhatsappTestMixin, HttpCase):
    """The webhook through real HTTP requests to the running Odoo."""

    webhook_path = WEBHOOK

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_whatsapp()
        cls.cron = cls.env.ref("crm_whatsapp_bridge.ir_cron_process_inbox")

    def test_handshake_echoes_challenge(self):
        response = self._handshake(**{"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                      "hub.challenge": "1158201444"})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.text, "1158201444")
        self.assertTrue(response.headers["Content-Type"].startswith("text/plain"))

    def test_handshake_refuses_wrong_token_or_mode(self):
        for params in (
            {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "42"},
            {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"},
            {"hub.challenge": "42"},
        ):
            response = self._handshake(**params)
            self.assertEqual(response.status_code, 403, params)
            self.assertNotIn("42", response.text)

    def test_signed_notification_is_stored_and_triggers_cron(self):
        message = text_message("15550101234", "مرحبا، أريد عرض سعر")
        triggers_before = self._triggers()
        response = self._post(encode(notification([message])))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"received": 1, "new": 1})
        event = self._inbox()
        self.assertEqual(len(event), 1)
        self.assertEqual((event.external_id, event.event_type, event.state, event.sender, event.channel_ref),
                         (message["id"], "message", "pending", "15550101234", PHONE_NUMBER_ID))
        self.assertEqual(event.payload["message"]["text"]["body"], "مرحبا، أريد عرض سعر")
        self.assertEqual(self._triggers(), triggers_before + 1)
        # Nothing but the insert happens in the request: no partner, no lead yet.
        self.assertFalse(self.env["crm.lead"].search([("whatsapp_account_id", "=", self.account.id)]))

    def test_unsigned_or_forged_notification_is_refused(self):
        body = encode(notification([text_message("15550101234", "hello")]))
        for signature in (None, "sha256=" + "0" * 64, sign(body, secret="another-secret"), "md5=abc"):
            response = self._post(body, signature=signature)
            self.assertEqual(response.status_code, 403, signature)
        # A body changed after signing fails too.
        response = self._post(body.replace(b"hello", b"hellO"), signature=sign(body))
        self.assertEqual(response.status_code, 403)
        self.assertFalse(self._inbox())

    def test_missing_app_secret_refuses(self):
        # The parameter cache outlives this test's rollback: empty it again afterwards.
        self.addCleanup(self.env.registry.clear_cache)
        self.env["ir.config_parameter"].sudo().set_param("crm_whatsapp_bridge.meta_app_secret", False)
        response = self._post(encode(notification([text_message("15550101234", "hi")])))
        self.assertEqual(response.status_code, 403)
        self.assertFalse(self._inbox())

    def test_what_is_not_a_notification_is_400(self):
        for body in (b"{not json", b'{"object": "page", "entry": []}', b'[1, 2]', b"\xff{}",
                     encode({"object": "whatsapp_business_account", "entry": "x"})):
            response = self._post(body)
            self.assertEqual(response.status_code, 400, body)
            self.assertEqual(response.json(), {"error": "malformed notification"})
        self.assertFalse(self._inbox())

    def test_redelivery_is_a_noop(self):
        body = encode(notification([text_message("15550101234", "once")]))
        self.assertEqual(self._post(body).json(), {"received": 1, "new": 1})
        triggers = self._triggers()
        second = self._post(body)
        self.assertEqual(second.status_code, 200)
        self.assertEqual(second.json(), {"received": 1, "new": 0})
        self.assertEqual(len(self._inbox()), 1)
        self.assertEqual(self._triggers(), triggers, "a pure redelivery must not wake the cron")

    def test_batch_stores_each_message_and_status(self):
        payload = notification(
            [text_message("15550101250", "Price for 10 licences?"),
             text_message("15550101251", "هل يوجد فرع في جدة؟")],
            statuses=[{"id": "wamid.OUT1", "status": "delivered", "timestamp": "1732450730",
                       "recipient_id": "15550101234"},
                      {"id": "wamid.OUT1", "status": "read", "timestamp": "1732450760",
                       "recipient_id": "15550101234"}])
        response = self._post(encode(payload))
        self.assertEqual(response.json(), {"received": 4, "new": 4})
        self.assertEqual(sorted(self._inbox().mapped("external_id"))[:2], ["wamid.OUT1:delivered", "wamid.OUT1:read"])
        self.assertEqual(sorted(self._inbox().mapped("event_type")), ["message", "message", "status", "status"])

    def test_unknown_phone_number_id_is_accepted_then_visible_as_dead(self):
        payload = notification([text_message("15550101234", "hi")], phone_number_id="999000111")
        response = self._post(encode(payload))
        self.assertEqual(response.status_code, 200)
        event = self._inbox()
        self.assertEqual(event.state, "pending")
        self.env["crm.inbox.event"]._process_chunk()
        self.assertEqual(event.state, "dead")
        self.assertIn("999000111", event.last_error)
        self.assertEqual(event.attempts, 1)

    def test_other_fields_are_acknowledged_without_events(self):
        payload = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "message_template_status_update", "value": {"event": "APPROVED"}}]}]}
        response = self._post(encode(payload))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"received": 0, "new": 0})
