import base64
import json
import re
import socket
import time
from datetime import timedelta
from pathlib import Path

from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, HttpCase, TransactionCase, tagged

from odoo.addons.crm_whatsapp_bridge.models import crm_whatsapp_message_outbound
from odoo.addons.crm_whatsapp_bridge.tools import outbound

from .common import PHONE_NUMBER_ID, WABA_ID, WhatsappTestMixin, bus_payloads, notification, text_message
from .fake_graph import FakeGraphServer, graph_error_body

SAMPLES = Path(__file__).resolve().parent / "samples"
SEND_OK = {"messaging_product": "whatsapp", "contacts": [{"input": "15550101234", "wa_id": "15550101234"}],
           "messages": [{"id": "wamid.SENT-OK-1"}]}
MESSAGES_PATH = f"/{PHONE_NUMBER_ID}/messages"
CUSTOMER = "15550101234"


def send_error(code, details, status=400):
    body = graph_error_body(code, f"(#{code}) {details}")
    body["error"]["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return (status, body)


class OutboundMixin(WhatsappTestMixin):
    """A customer who wrote ``hours_ago`` hours ago, with the lead that message created."""

    @classmethod
    def setup_outbound(cls):
        cls.graph = FakeGraphServer().__enter__()
        cls.addClassCleanup(cls.graph.__exit__, None, None, None)
        cls.setup_whatsapp(graph_url=cls.graph.url)

    def customer_writes(self, hours_ago=1, sender=CUSTOMER, name="Layla Haddad"):
        message = text_message(sender, "Do you deliver to Jeddah?",
                               timestamp=str(int(time.time() - hours_ago * 3600)))
        self.store(notification([message], contacts={sender: name}))
        self.process_all()
        return self.env["crm.whatsapp.message"].search([("wamid", "=", message["id"])]).lead_id

    def composer(self, lead, user=None, **values):
        Composer = self.env["crm.whatsapp.composer"].with_user(user or self.salesperson).with_context(
            active_model="crm.lead", active_id=lead.id)
        form = Form(Composer)
        for name, value in values.items():
            setattr(form, name, value)
        return form.save()

    def sent_requests(self):
        return self.graph.received(MESSAGES_PATH)

    def outbound_of(self, lead):
        return lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out")

    def send_triggers(self):
        cron = self.env.ref("crm_whatsapp_bridge.ir_cron_whatsapp_send")
        return self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])


@tagged("post_install", "-at_install")
class TestOutbound(OutboundMixin, TransactionCase):
    """The composer, the Cloud API wire format, retries, statuses, templates and access."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()
        # The send cron commits: in test mode its cursor commits to savepoints of this transaction.
        cls.registry.enter_test_mode(cls.cr)
        cls.addClassCleanup(cls.registry.leave_test_mode)

    def setUp(self):
        super().setUp()
        self.graph.requests.clear()
        self.graph.respond(MESSAGES_PATH, (200, SEND_OK))

    def test_free_text_inside_the_window_reaches_meta_as_json(self):
        lead = self.customer_writes(hours_ago=2)
        composer = self.composer(lead, body="Yes, delivery to Jeddah takes 2 days.")
        self.assertTrue(composer.window_open)
        self.assertEqual(composer.account_id, self.account)
        triggers = self.send_triggers()
        composer.action_send()
        queued = self.outbound_of(lead)
        self.assertFalse(self.sent_requests(), "nothing reaches Meta before the transaction commits")
        self.assertEqual((queued.state, queued.wamid), ("queued", False))
        self.assertIn("Waiting to send", str(queued.mail_message_id.body))
        self.assertEqual(self.send_triggers(), triggers + 1, "the send cron is triggered in the transaction")
        self.send_queued()
        [request] = self.sent_requests()
        self.assertEqual(request["authorization"], "Bearer EAAG-test-token")
        self.assertEqual(request["json"], {
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER, "type": "text",
            "text": {"body": "Yes, delivery to Jeddah takes 2 days.", "preview_url": False}})
        sent = lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out")
        self.assertEqual((sent.wamid, sent.state, sent.user_id, sent.partner_id),
                         ("wamid.SENT-OK-1", "sent", self.salesperson, lead.partner_id))
        self.assertIn("Sent", str(sent.mail_message_id.body))
        post = sent.mail_message_id
        self.assertEqual(post.author_id, self.salesperson.partner_id)
        self.assertEqual(post.subtype_id, self.env.ref("mail.mt_note"))
        self.assertIn("Jeddah takes 2 days", str(post.body))
        self.assertIn("WhatsApp", str(post.body))

    def test_rolled_back_transaction_sends_nothing(self):
        lead = self.customer_writes()
        triggers = self.send_triggers()
        with self.assertRaises(ValueError), self.env.cr.savepoint():
            self.composer(lead, body="Never mind").action_send()
            self.assertEqual(self.outbound_of(lead).state, "queued")
            raise ValueError("something later in the request fails")
        self.env.invalidate_all()
        self.assertFalse(self.outbound_of(lead))
        self.assertEqual(self.send_triggers(), triggers)
        self.send_queued()
        self.assertFalse(self.sent_requests())

    def test_queue_method_for_other_code(self):
        """Automatic messages (welcome, consent...) use the same queue as the composer."""
        lead = self.customer_writes()
        message = self.env["crm.whatsapp.message"]._queue_outbound(
            lead, self.account, lead.partner_id, {"message_type": "text", "body": "Welcome!", "user_id": False})
        self.assertEqual((message.state, message.user_id, message.wa_id), ("queued", self.env["res.users"], CUSTOMER))
        self.assertFalse(self.sent_requests())
        self.send_queued()
        self.assertEqual(self.sent_requests()[0]["json"]["text"]["body"], "Welcome!")
        self.assertEqual(message.state, "sent")

    def test_crash_after_meta_accepted_never_resends(self):
        lead = self.customer_writes()
        self.composer(lead, body="Only once, please").action_send()
        message = self.outbound_of(lead)

        class WorkerKilled(BaseException):
            """The worker dies (SIGKILL, time limit) right after Meta accepted the message."""

        accept = outbound.CloudApiClient.send_message

        def accept_then_die(client, phone_number_id, payload):
            accept(client, phone_number_id, payload)
            raise WorkerKilled()

        self.patch(outbound.CloudApiClient, "send_message", accept_then_die)
        # Not assertRaises: Odoo's rolls the whole block back, the worker's commits included.
        try:
            self.send_queued()
        except WorkerKilled:
            pass
        else:
            self.fail("the worker should have died")
        self.patch(outbound.CloudApiClient, "send_message", accept)
        self.assertEqual(len(self.sent_requests()), 1, "Meta accepted the message")
        self.assertEqual((message.state, message.wamid), ("sending", False),
                         "'sending' was committed before the call; Meta's answer was lost with the worker")

        self.send_queued()  # the cron runs again at once: the message is not queued, nothing is sent
        self.assertEqual((len(self.sent_requests()), message.state), (1, "sending"))
        later = fields.Datetime.now() + crm_whatsapp_message_outbound.SENDING_GRACE + timedelta(seconds=5)
        with freeze_time(later):
            self.send_queued()
        self.assertEqual(len(self.sent_requests()), 1, "an interrupted send is never resent by itself")
        self.assertEqual(message.state, "unknown")
        self.assertIn("may have delivered", message.error_help)
        self.assertIn("Unknown", str(message.mail_message_id.body))
        [toast] = bus_payloads(self.env, self.salesperson, "simple_notification")
        self.assertIn("Layla Haddad", toast["message"])

        # Meta's status for the wamid Odoo never saved reconciles the message.
        status = {"id": "wamid.SENT-OK-1", "status": "delivered", "timestamp": str(int(time.time())),
                  "recipient_id": CUSTOMER}
        self.store(notification(statuses=[status]))
        self.process_all()
        self.assertEqual((message.state, message.wamid, message.error_message),
                         ("delivered", "wamid.SENT-OK-1", False))

    def test_lost_answer_is_unknown_and_not_retried(self):
        lead = self.customer_writes()

        def accept_and_hang_up(request):
            # Meta got the request, the connection drops before its answer reaches Odoo.
            request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            return 200, SEND_OK

        self.graph.handle(MESSAGES_PATH, accept_and_hang_up)
        self.composer(lead, body="Did it arrive?").action_send()
        self.send_queued()
        message = self.outbound_of(lead)
        self.assertEqual(len(self.sent_requests()), 1, "a request Meta may have received is not retried")
        self.assertEqual((message.state, message.wamid), ("unknown", False))
        self.assertIn("ConnectionError", message.error_message)

        # The user checked: it did not arrive. Resend is explicit.
        self.graph.respond(MESSAGES_PATH, (200, SEND_OK))
        message.with_user(self.salesperson).action_retry()
        self.send_queued()
        self.assertEqual((len(self.sent_requests()), message.state), (2, "sent"))

    def test_outside_the_window_only_a_template_goes_out(self):
        lead = self.customer_writes(hours_ago=30)
        composer = self.composer(lead)
        self.assertFalse(composer.window_open)
        composer.body = "Are you still interested?"
        with self.assertRaisesRegex(UserError, "24 hours"):
            composer.action_send()
        self.assertFalse(self.sent_requests(), "nothing may reach Meta")
        self.assertFalse(lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out"))

        template = self._template("quote_ready", "Hello {{1}}, your quote {{2}} is ready.")
        template.variable_ids.filtered(lambda v: v.key == "2").fixed_value = "Q-2026-7"
        composer = self.composer(lead, template_id=template)
        self.assertEqual(composer.preview, "Hello Layla Haddad, your quote Q-2026-7 is ready.")
        composer.action_send()
        self.send_queued()
        [request] = self.sent_requests()
        self.assertEqual(request["json"], {
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER, "type": "template",
            "template": {"name": "quote_ready", "language": {"code": "ar"}, "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Layla Haddad"},
                                                {"type": "text", "text": "Q-2026-7"}]}]}})
        sent = lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out")
        self.assertEqual((sent.message_type, sent.body, sent.template_id),
                         ("template", "Hello Layla Haddad, your quote Q-2026-7 is ready.", template))

    def test_template_with_an_unfilled_variable_is_refused(self):
        lead = self.customer_writes(hours_ago=30)
        template = self._template("follow_up", "Hi {{1}}, about {{2}}")
        composer = self.composer(lead, template_id=template)
        with self.assertRaisesRegex(UserError, re.escape("{{2}}")):
            composer.action_send()
        self.assertFalse(self.sent_requests())

    def test_throttling_is_retried_then_sent(self):
        lead = self.customer_writes()
        throttled = send_error(130429, "Cloud API message throughput has been reached.")
        self.graph.respond(MESSAGES_PATH, throttled, throttled, (200, SEND_OK))
        self.composer(lead, body="Retry me").action_send()
        self.send_queued()
        self.assertEqual(len(self.sent_requests()), 3)
        sent = lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out")
        self.assertEqual((sent.state, sent.wamid), ("sent", "wamid.SENT-OK-1"))

    def test_server_errors_stop_after_three_attempts_then_retry_button(self):
        lead = self.customer_writes()
        self.graph.respond(MESSAGES_PATH, send_error(1, "Unknown error", status=503))
        self.composer(lead, body="Your quote").action_send()
        self.send_queued()
        self.assertEqual(len(self.sent_requests()), 3, "at most 3 attempts per send")
        failed = lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out")
        self.assertEqual((failed.state, failed.error_code), ("failed", 1))
        self.assertIn("Failed", str(failed.mail_message_id.body))
        [toast] = bus_payloads(self.env, self.salesperson, "simple_notification")
        self.assertEqual(toast["type"], "danger")
        self.assertIn("Layla Haddad", toast["message"])

        self.graph.requests.clear()
        self.graph.respond(MESSAGES_PATH, (200, SEND_OK))
        failed.with_user(self.salesperson).action_retry()
        self.assertEqual(failed.state, "queued")
        self.assertFalse(self.sent_requests(), "a retry is queued too")
        self.send_queued()
        self.assertEqual(self.sent_requests()[0]["json"]["text"]["body"], "Your quote")
        self.assertEqual((failed.state, failed.wamid, failed.error_code), ("sent", "wamid.SENT-OK-1", 0))
        self.assertNotIn("Failed", str(failed.mail_message_id.body))

    def test_reengagement_error_is_not_retried_and_explained(self):
        lead = self.customer_writes()
        sample = json.loads((SAMPLES / "whatsapp_send_error_131047.json").read_text())
        self.graph.respond(MESSAGES_PATH, (400, sample))
        self.composer(lead, body="Hello again").action_send()
        self.send_queued()
        self.assertEqual(len(self.sent_requests()), 1, "131047 must never be retried")
        failed = lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out")
        self.assertEqual((failed.state, failed.error_code), ("failed", 131047))
        self.assertIn("24 hours", failed.error_help)
        self.assertTrue(failed.error_message)

    def test_expired_token_is_not_retried(self):
        lead = self.customer_writes()
        self.graph.respond(MESSAGES_PATH, (401, graph_error_body(190, "Error validating access token")))
        self.composer(lead, body="Hello").action_send()
        self.send_queued()
        self.assertEqual(len(self.sent_requests()), 1)
        failed = lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out")
        self.assertEqual(failed.error_code, 190)
        self.assertIn("administrator", failed.error_help)

    def test_file_is_uploaded_then_sent_with_caption(self):
        lead = self.customer_writes()
        self.graph.respond(f"/{PHONE_NUMBER_ID}/media", (200, {"id": "media-777"}))
        png = b"\x89PNG\r\n\x1a\nfake-image"
        attachment = self.env["ir.attachment"].with_user(self.salesperson).create({
            "name": "brochure.png", "raw": png, "mimetype": "image/png",
            "res_model": "crm.whatsapp.composer", "res_id": 0})
        self.composer(lead, body="Our brochure", attachment_ids=attachment).action_send()
        self.send_queued()
        [upload] = self.graph.received(f"/{PHONE_NUMBER_ID}/media")
        self.assertEqual(upload["form"], {"messaging_product": "whatsapp", "type": "image/png"})
        self.assertEqual(upload["files"]["file"], ("brochure.png", png, "image/png"))
        [request] = self.sent_requests()
        self.assertEqual(request["json"]["type"], "image")
        self.assertEqual(request["json"]["image"], {"id": "media-777", "caption": "Our brochure"})
        sent = lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out")
        self.assertEqual(sent.attachment_ids.res_id, lead.id)
        self.assertEqual(base64.b64decode(sent.attachment_ids.datas), png)

    def test_statuses_update_the_sent_message_in_order(self):
        lead = self.customer_writes()
        self.composer(lead, body="Status test").action_send()
        self.send_queued()
        sent = lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out")

        def status(state, ts, **extra):
            return dict({"id": sent.wamid, "status": state, "timestamp": str(ts), "recipient_id": CUSTOMER},
                        **extra)

        self.store(notification(statuses=[status("read", 1732450760)]))
        self.process_all()
        self.store(notification(statuses=[status("sent", 1732450700, pricing={
            "billable": True, "pricing_model": "PMP", "category": "service"}), status("delivered", 1732450730)]))
        self.process_all()
        self.assertEqual((sent.state, sent.pricing_category), ("read", "service"))
        self.assertIn("Read", str(sent.mail_message_id.body))

    def test_failed_status_reaches_the_author(self):
        lead = self.customer_writes()
        self.composer(lead, body="Will fail later").action_send()
        self.send_queued()
        sent = lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out")
        payload = json.loads((SAMPLES / "whatsapp_status_failed.json").read_text())
        value = payload["entry"][0]["changes"][0]["value"]
        value["metadata"]["phone_number_id"] = PHONE_NUMBER_ID
        value["statuses"][0]["id"] = sent.wamid
        self.store(payload)
        self.process_all()
        self.assertEqual((sent.state, sent.error_code), ("failed", 131047))
        toasts = bus_payloads(self.env, self.salesperson, "simple_notification")
        self.assertEqual(len(toasts), 1)
        self.assertIn("24 hours", toasts[0]["message"])

    def test_salesperson_cannot_message_a_colleagues_customer(self):
        lead = self.customer_writes()
        lead.user_id = self.other_salesperson
        with self.assertRaises(AccessError):
            self.composer(lead, body="hi")
        # A composer made up by RPC for that lead still cannot send.
        composer = self.env["crm.whatsapp.composer"].with_user(self.salesperson).create({
            "lead_id": lead.id, "partner_id": lead.partner_id.id, "account_id": self.account.id, "body": "hi"})
        with self.assertRaises(AccessError):
            composer.action_send()
        self.assertFalse(self.sent_requests())
        self.assertFalse(lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out"))

    def test_composer_from_the_contact_uses_the_open_lead(self):
        lead = self.customer_writes()
        composer = Form(self.env["crm.whatsapp.composer"].with_user(self.salesperson).with_context(
            active_model="res.partner", active_id=lead.partner_id.id)).save()
        self.assertEqual((composer.partner_id, composer.lead_id, composer.recipient),
                         (lead.partner_id, lead, "+" + CUSTOMER))

    def test_unread_badge_counts_until_the_salesperson_opens_the_lead(self):
        lead = self.customer_writes()
        self.customer_writes()
        self.assertEqual(lead.whatsapp_unread_count, 2)
        self.assertFalse(lead.with_user(self.admin).action_whatsapp_mark_seen(), "only the salesperson clears it")
        self.assertEqual(lead.whatsapp_unread_count, 2)
        self.assertTrue(lead.with_user(self.salesperson).action_whatsapp_mark_seen())
        self.assertEqual(lead.whatsapp_unread_count, 0)
        unread = self.env["mail.notification"].search_count([
            ("res_partner_id", "=", self.salesperson.partner_id.id), ("is_read", "=", False),
            ("mail_message_id", "in", lead.whatsapp_message_ids.mail_message_id.ids)])
        self.assertEqual(unread, 0, "the WhatsApp inbox entries of the lead are read too")

    def test_templates_sync_across_pages(self):
        path = f"/{WABA_ID}/message_templates"
        page1 = {"data": [
            {"name": "quote_ready", "language": "ar", "status": "APPROVED", "category": "UTILITY", "id": "t1",
             "components": [{"type": "BODY", "text": "مرحبا {{1}}، عرضك {{2}} جاهز"},
                            {"type": "FOOTER", "text": "Acme"},
                            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Call me"}]}]}],
            "paging": {"cursors": {"before": "a", "after": "b"}, "next": f"{self.graph.url}{path}?after=b"}}
        page2 = {"data": [
            {"name": "spring_promo", "language": "en_US", "status": "PENDING", "category": "MARKETING", "id": "t2",
             "components": [{"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "Spring is here"}]}],
            "paging": {"cursors": {"before": "b", "after": "c"}}}
        self.graph.respond(path, (200, page1), (200, page2))
        self.account.with_user(self.admin).action_sync_templates()
        requests = self.graph.received(path, "GET")
        self.assertEqual(len(requests), 2)
        self.assertEqual(requests[0]["args"]["limit"], "100")
        self.assertEqual(requests[1]["args"], {"after": "b"})
        templates = self.account.template_ids
        self.assertEqual(sorted(templates.mapped("name")), ["quote_ready", "spring_promo"])
        quote = templates.filtered(lambda t: t.name == "quote_ready")
        self.assertEqual((quote.status, quote.category, quote.footer, quote.buttons, quote.can_send),
                         ("approved", "utility", "Acme", "Call me", True))
        self.assertEqual(quote.variable_ids.mapped("key"), ["1", "2"])
        self.assertEqual(quote.variable_ids[0].field_path, "partner_id.name")
        promo = templates.filtered(lambda t: t.name == "spring_promo")
        self.assertEqual((promo.status, promo.unsupported_reason, promo.header_format, promo.can_send),
                         ("pending", False, "image", False))

        # Meta deleted spring_promo: the next sync archives it.
        self.graph.respond(path, (200, dict(page1, paging={})))
        self.account.with_user(self.admin).action_sync_templates()
        self.assertEqual(self.account.template_ids, quote)

    def test_bad_field_path_is_refused(self):
        template = self._template("bad_path", "Hi {{1}}")
        with self.assertRaisesRegex(Exception, "not a field of leads"):
            template.variable_ids.field_path = "partner_id.no_such_field"

    def _template(self, name, body):
        template = self.env["crm.whatsapp.template"].create({
            "name": name, "language": "ar", "account_id": self.account.id, "status": "approved",
            "category": "utility", "body": body})
        template._ensure_variables()
        return template


@tagged("post_install", "-at_install")
class TestComposerOverHttp(OutboundMixin, HttpCase):
    """The composer driven the way the web client does, through JSON-RPC as the salesperson."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_outbound()

    def test_send_from_the_lead_over_json_rpc(self):
        self.graph.respond(MESSAGES_PATH, (200, SEND_OK))
        lead = self.customer_writes()
        self.authenticate("wa_salesperson", "wa_salesperson")
        context = {"active_model": "crm.lead", "active_id": lead.id}
        action = self.make_jsonrpc_request("/web/dataset/call_kw/crm.lead/action_whatsapp_compose", {
            "model": "crm.lead", "method": "action_whatsapp_compose", "args": [[lead.id]], "kwargs": {}})
        self.assertEqual((action["res_model"], action["target"]), ("crm.whatsapp.composer", "new"))
        composer_id = self.make_jsonrpc_request("/web/dataset/call_kw/crm.whatsapp.composer/create", {
            "model": "crm.whatsapp.composer", "method": "create",
            "args": [{"body": "Sent over HTTP"}], "kwargs": {"context": context}})
        self.make_jsonrpc_request("/web/dataset/call_kw/crm.whatsapp.composer/action_send", {
            "model": "crm.whatsapp.composer", "method": "action_send",
            "args": [composer_id], "kwargs": {"context": context}})
        self.assertFalse(self.graph.received(MESSAGES_PATH), "the request only queued the message")
        self.send_queued()
        [request] = self.graph.received(MESSAGES_PATH)
        self.assertEqual(request["json"]["text"]["body"], "Sent over HTTP")
        sent = self.env["crm.whatsapp.message"].search([("lead_id", "=", lead.id), ("direction", "=", "out")])
        self.assertEqual(sent.user_id.login, "wa_salesperson")
