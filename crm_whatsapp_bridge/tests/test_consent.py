import base64
import itertools
import json
import time
from datetime import timedelta
from pathlib import Path

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, HttpCase, tagged

from odoo.addons.crm_whatsapp_bridge.tools.leadgen import parse_lead

from .common import (
    FORM_ID,
    PAGE_ID,
    PHONE_NUMBER_ID,
    WABA_ID,
    WebhookClientMixin,
    WhatsappTestMixin,
    bus_payloads,
    encode,
    notification,
    text_message,
)
from .fake_graph import FakeGraphServer

SAMPLES = Path(__file__).resolve().parent / "samples"
SEND_OK = {"messaging_product": "whatsapp", "contacts": [{"input": "966501234567", "wa_id": "966501234567"}],
           "messages": []}
MESSAGES_PATH = f"/{PHONE_NUMBER_ID}/messages"
MEDIA_PATH = f"/{PHONE_NUMBER_ID}/media"
CUSTOMER = "966501234567"  # a valid number: the phone blacklist only takes those
# A 1x1 PNG: what a salesperson would pick as an image header.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def sample(name, **value_updates):
    """A WhatsApp Business Account sample, re-addressed to the test number and WABA."""
    payload = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    entry = payload["entry"][0]
    entry["id"] = WABA_ID
    value = entry["changes"][0]["value"]
    if "metadata" in value:
        value["metadata"]["phone_number_id"] = PHONE_NUMBER_ID
    value.update(value_updates)
    return payload


def preferences(value, wa_id=CUSTOMER, seconds_ago=0):
    payload = sample("waba_user_preferences_stop")
    value_obj = payload["entry"][0]["changes"][0]["value"]
    value_obj["contacts"][0]["wa_id"] = wa_id
    value_obj["user_preferences"][0].update(wa_id=wa_id, value=value, timestamp=int(time.time()) - seconds_ago,
                                            detail=f"User requested to {value} marketing messages")
    return payload


@tagged("post_install", "-at_install")
class TestConsent(WebhookClientMixin, WhatsappTestMixin, HttpCase):
    """Consent and template rules, driven by signed webhooks through the running Odoo."""

    webhook_path = "/crm/webhook/whatsapp"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.graph = FakeGraphServer().__enter__()
        cls.addClassCleanup(cls.graph.__exit__, None, None, None)
        cls.setup_whatsapp(graph_url=cls.graph.url)
        cls.env["phone.blacklist"].sudo().search([]).unlink()
        # Marketing templates are sent by users with that right (Sales Managers have it by default).
        cls.salesperson.groups_id |= cls.env.ref("crm_whatsapp_bridge.group_whatsapp_marketing")

    def setUp(self):
        super().setUp()
        self.graph.requests.clear()
        sent = itertools.count(1)
        self.graph.handle(MESSAGES_PATH, lambda request: (200, dict(SEND_OK, messages=[
            {"id": f"wamid.CONSENT-{next(sent)}"}])))
        self.graph.respond(MEDIA_PATH, (200, {"id": "MEDIA-HEADER-1"}))

    # ------------------------------------------------------------------ helpers

    def deliver(self, payload):
        """POST a signed notification, then run the inbox cron the way the server would."""
        response = self._post(encode(payload))
        self.assertEqual(response.status_code, 200, response.text)
        Inbox = self.env["crm.inbox.event"]
        while Inbox._process_chunk(limit=50):
            pass
        self.assertFalse(Inbox.search([("state", "=", "pending")]).mapped("last_error"))
        return response.json()

    def customer_says(self, body, sender=CUSTOMER, hours_ago=0):
        message = text_message(sender, body, timestamp=str(int(time.time() - hours_ago * 3600)))
        self.deliver(notification([message], contacts={sender: "Layla Haddad"}))
        return self.env["crm.whatsapp.message"].search([("wamid", "=", message["id"])])

    def consent(self, partner):
        return self.env["crm.whatsapp.consent"].search([("partner_id", "=", partner.id),
                                                        ("account_id", "=", self.account.id)])

    def sent_to_meta(self, path):
        """The requests the fake Cloud API received on ``path`` once the send cron ran."""
        self.send_queued()
        return self.graph.received(path)

    def replies(self):
        return [request["json"]["text"]["body"] for request in self.sent_to_meta(MESSAGES_PATH)
                if request["json"]["type"] == "text"]

    def blacklisted(self, number):
        return bool(self.env["phone.blacklist"].search_count([("number", "=", number)]))

    def template(self, name, category="marketing", **values):
        template = self.env["crm.whatsapp.template"].create(dict({
            "name": name, "language": "en_US", "account_id": self.account.id, "status": "approved",
            "category": category, "body": "Hello {{1}}", "meta_template_id": f"{name}-id"}, **values))
        template._ensure_variables()
        return template

    def composer(self, lead, **values):
        form = Form(self.env["crm.whatsapp.composer"].with_user(self.salesperson).with_context(
            active_model="crm.lead", active_id=lead.id))
        for name, value in values.items():
            setattr(form, name, value)
        return form.save()

    def unchecked_composer(self, lead, **values):
        """A composer created without the form view (which would already ask for required inputs)."""
        return self.env["crm.whatsapp.composer"].with_user(self.salesperson).with_context(
            active_model="crm.lead", active_id=lead.id).create(values)

    # ------------------------------------------------------------ keywords

    def test_keyword_flow_in_english(self):
        first = self.customer_says("Hello, do you have the gold plan?")
        partner, lead = first.partner_id, first.lead_id
        consent = self.consent(partner)
        self.assertEqual((consent.marketing, consent.opt_in_source, consent.phone),
                         ("allowed", "conversation", "+966501234567"))

        stop = self.customer_says("Stop!")
        self.assertEqual((consent.marketing, consent.source), ("stopped", "keyword"))
        self.assertIn("Stop!", consent.reason)
        self.assertEqual(consent.history_ids[0].message_id, stop)
        self.assertTrue(self.blacklisted("+966501234567"), "the phone blacklist follows the consent")
        self.assertEqual(len(self.replies()), 1)
        self.assertIn("no longer receive marketing messages", self.replies()[0])
        notes = lead.message_ids.filtered(lambda m: "Marketing messages stopped" in str(m.body))
        self.assertEqual(len(notes), 1, "the opt-out is noted in the lead's chatter")

        self.customer_says("STOP")
        self.assertEqual(len(self.replies()), 1, "a repeated STOP is not answered again")
        self.customer_says("How much is the gold plan?")
        self.assertEqual(consent.marketing, "stopped", "an ordinary message does not re-subscribe")

        self.customer_says("start")
        self.assertEqual((consent.marketing, consent.opt_in_source), ("allowed", "keyword"))
        self.assertFalse(self.blacklisted("+966501234567"))
        self.assertEqual(len(self.replies()), 2)
        self.assertIn("receive our offers", self.replies()[1])
        self.assertEqual(consent.history_ids.mapped("marketing"), ["allowed", "stopped", "stopped", "allowed"])
        self.assertEqual(consent.history_ids.mapped("applied"), [True, False, True, True])

    def test_keyword_flow_in_arabic_with_custom_confirmation(self):
        self.account.opt_out_reply = "تم إلغاء اشتراكك في رسائلنا التسويقية."
        self.customer_says("مرحبا")
        consent = self.consent(self.env["res.partner"].search([("whatsapp_number", "=", "+966501234567")]))
        self.customer_says("الغاء")  # typed without the hamza
        self.assertEqual(consent.marketing, "stopped")
        self.assertEqual(self.replies(), ["تم إلغاء اشتراكك في رسائلنا التسويقية."])
        self.customer_says("أريد إلغاء الطلب رقم 5")  # a sentence that contains the keyword
        self.assertEqual(consent.marketing, "stopped")
        self.assertEqual(len(self.replies()), 1)
        self.customer_says("اشتراك")
        self.assertEqual(consent.marketing, "allowed")
        self.assertEqual(len(self.replies()), 2)

    def test_edited_keywords_and_no_reply_outside_the_window(self):
        self.account.opt_out_keywords = "BASTA, كفى"
        self.customer_says("STOP", hours_ago=30)  # no longer a keyword on this number
        partner = self.env["res.partner"].search([("whatsapp_number", "=", "+966501234567")])
        self.assertEqual(self.consent(partner).marketing, "allowed")
        self.customer_says("كفى", hours_ago=25)  # a late delivery: the window has closed
        self.assertEqual(self.consent(partner).marketing, "stopped")
        self.assertEqual(self.replies(), [], "no confirmation outside the 24-hour window")

    def test_greeting_and_stop_in_one_notification(self):
        now = int(time.time())
        hello = text_message(CUSTOMER, "Hello", timestamp=str(now - 5))
        stop = text_message(CUSTOMER, "UNSUBSCRIBE", timestamp=str(now))
        self.deliver(notification([stop, hello], contacts={CUSTOMER: "Layla Haddad"}))
        partner = self.env["res.partner"].search([("whatsapp_number", "=", "+966501234567")])
        consent = self.consent(partner)
        self.assertEqual(consent.marketing, "stopped", "the earlier greeting does not re-subscribe")
        self.assertEqual(len(self.replies()), 1)

    def test_customers_writing_first_in_one_chunk(self):
        # Three new customers in one notification; the second one's number is on the blacklist.
        self.env["phone.blacklist"].with_user(self.admin).add("+966501230002")
        senders = ["966501230001", "966501230002", "966501230003"]
        messages = [text_message(sender, f"Hello from {sender}") for sender in senders]
        self.deliver(notification(messages + [text_message(senders[0], "Still there?")]))
        for sender, message in zip(senders, messages, strict=True):
            wa_message = self.env["crm.whatsapp.message"].search([("wamid", "=", message["id"])])
            consent = self.consent(wa_message.partner_id)
            expected = ("stopped", "blacklist") if sender == senders[1] else ("allowed", "conversation")
            self.assertEqual((consent.marketing, consent.source), expected, sender)
            self.assertEqual(consent.phone, "+" + sender)
            self.assertEqual(consent.history_ids.mapped("message_id"), wa_message, "one ledger line, its message")
            self.assertEqual(wa_message.lead_id.whatsapp_marketing_consent, expected[0])
        self.assertTrue(self.blacklisted("+966501230002"), "the blacklist is left as it was")
        self.assertFalse(self.blacklisted("+966501230001"))

    # ------------------------------------------------------------ user_preferences

    def test_user_preferences_webhook_stops_and_resumes(self):
        answer = self.deliver(preferences("stop", seconds_ago=60))
        self.assertEqual(answer, {"received": 1, "new": 1})
        partner = self.env["res.partner"].search([("whatsapp_number", "=", "+966501234567")])
        self.assertEqual(partner.name, "Omar Saleh")
        consent = self.consent(partner)
        self.assertEqual((consent.marketing, consent.source, consent.reason),
                         ("stopped", "meta", "User requested to stop marketing messages"))
        self.assertTrue(self.blacklisted("+966501234567"))
        self.assertEqual(self.replies(), [], "Meta's own setting is not answered")

        self.deliver(preferences("resume"))
        self.assertEqual((consent.marketing, consent.opt_in_source), ("allowed", "meta"))
        self.assertFalse(self.blacklisted("+966501234567"))

        # A stop Meta sent before the resume, delivered late, is kept in the ledger but changes nothing.
        self.deliver(preferences("stop", seconds_ago=3600))
        self.assertEqual(consent.marketing, "allowed")
        late = consent.history_ids.sorted("id")[-1]
        self.assertEqual((late.marketing, late.applied, len(consent.history_ids)), ("stopped", False, 3))
        event = self.env["crm.inbox.event"].search([("event_type", "=", "user_preferences")], limit=1)
        self.assertEqual(event.state, "done")

    def test_user_preferences_for_an_unknown_number_is_dead(self):
        payload = preferences("stop")
        payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
        self.deliver(payload)
        event = self.env["crm.inbox.event"].search([("event_type", "=", "user_preferences")])
        self.assertEqual(event.state, "dead")
        self.assertIn("999", event.last_error)

    def test_forged_preferences_are_refused(self):
        response = self._post(encode(preferences("stop")), signature="sha256=" + "0" * 64)
        self.assertEqual(response.status_code, 403)
        self.assertFalse(self.env["crm.inbox.event"].search([("event_type", "=", "user_preferences")]))

    # ------------------------------------------------------------ ledger

    def test_ledger_keeps_who_what_when_why(self):
        partner = self.env["res.partner"].create({"name": "Rana Said", "phone": "+15550101299"})
        Consent = self.env["crm.whatsapp.consent"]
        Consent.with_user(self.admin)._record(partner, self.account, "allowed", "web_form", "Signed up on /offers")
        wizard = self.env["crm.whatsapp.consent.change"].with_user(self.admin).create({
            "partner_id": partner.id, "account_id": self.account.id, "marketing": "stopped",
            "reason": "Asked by phone to stop"})
        wizard.action_apply()
        consent = self.consent(partner)
        history = consent.history_ids.sorted("id")
        self.assertEqual(
            [(h.previous, h.marketing, h.source, h.user_id, h.reason) for h in history],
            [("unknown", "allowed", "web_form", self.admin, "Signed up on /offers"),
             ("allowed", "stopped", "manual", self.admin, "Asked by phone to stop")])
        self.assertTrue(all(h.date for h in history))
        self.assertEqual(consent.opt_in_source, "web_form", "the opt-in source stays when marketing stops")
        self.assertEqual(partner.whatsapp_consent_count, 1)
        self.assertEqual(partner.action_open_whatsapp_consents()["domain"], [("partner_id", "=", partner.id)])
        with self.assertRaises(UserError):
            history[0].write({"reason": "rewritten"})
        with self.assertRaises(AccessError):
            self.env["crm.whatsapp.consent.history"].with_user(self.salesperson).create({
                "consent_id": consent.id, "date": fields.Datetime.now(), "marketing": "allowed", "source": "manual"})
        salesperson_wizard = self.env["crm.whatsapp.consent.change"].with_user(self.salesperson).create({
            "partner_id": partner.id, "account_id": self.account.id, "marketing": "allowed", "reason": "trust me"})
        with self.assertRaisesRegex(UserError, "sales managers"):
            salesperson_wizard.action_apply()
        self.assertEqual(consent.marketing, "stopped")

    # ------------------------------------------------------------ blacklist

    def test_phone_blacklist_and_consent_stay_consistent(self):
        first = self.customer_says("Hi")
        partner, lead = first.partner_id, first.lead_id
        consent = self.consent(partner)
        self.assertEqual(consent.marketing, "allowed")
        promo = self.template("spring_sale")
        self.env["phone.blacklist"].with_user(self.admin).add("+966 50 123 4567")
        self.assertEqual((consent.marketing, consent.source), ("stopped", "blacklist"))
        with self.assertRaisesRegex(UserError, "blacklist"):
            self.composer(lead, template_id=promo).action_send()
        self.env["phone.blacklist"].with_user(self.admin).remove("+966501234567")
        self.assertEqual((consent.marketing, consent.source), ("allowed", "blacklist"))
        self.composer(lead, template_id=promo).action_send()
        self.assertEqual(len(self.sent_to_meta(MESSAGES_PATH)), 1)

    # ------------------------------------------------------------ composer and automatic senders

    def test_composer_refuses_marketing_without_consent_but_allows_utility_and_replies(self):
        lead = self.customer_says("Hello").lead_id
        self.customer_says("STOP")
        self.send_queued()  # the opt-out confirmation
        self.graph.requests.clear()
        promo, receipt = self.template("spring_sale"), self.template("order_receipt", category="utility")
        composer = self.composer(lead, template_id=promo)
        self.assertIn("stopped marketing messages", composer.consent_warning)
        with self.assertRaisesRegex(UserError, "stopped marketing messages"):
            composer.action_send()
        self.assertFalse(self.sent_to_meta(MESSAGES_PATH), "nothing reached Meta")
        self.composer(lead, template_id=receipt).action_send()
        self.composer(lead, body="Your order ships tomorrow.").action_send()
        sent = [request["json"]["type"] for request in self.sent_to_meta(MESSAGES_PATH)]
        self.assertEqual(sent, ["template", "text"])

        Message = self.env["crm.whatsapp.message"]
        partner = lead.partner_id
        self.assertFalse(Message._whatsapp_may_send_automatic(partner, self.account))
        self.assertFalse(Message._whatsapp_may_send_automatic(partner, self.account, receipt))
        self.customer_says("START")
        self.assertTrue(Message._whatsapp_may_send_automatic(partner, self.account))
        self.assertTrue(Message._whatsapp_may_send_automatic(partner, self.account, promo))

    def test_marketing_needs_a_recorded_consent(self):
        partner = self.env["res.partner"].create({"name": "Cold Contact", "phone": "+966501234588"})
        promo = self.template("spring_sale")
        Message = self.env["crm.whatsapp.message"]
        self.assertIn("has not agreed", Message._whatsapp_send_refusal(partner, self.account, promo))
        self.assertFalse(Message._whatsapp_may_send_automatic(partner, self.account, promo))
        self.assertTrue(Message._whatsapp_may_send_automatic(partner, self.account), "a welcome may go")
        nobody = self.env["res.partner"].create({"name": "No Number"})
        self.assertFalse(Message._whatsapp_may_send_automatic(nobody, self.account))

    def test_lead_ads_consent_checkbox(self):
        page = self.env["crm.meta.page"].create({"name": "Amin Trading", "page_id": PAGE_ID,
                                                 "access_token": "EAAP", "team_id": self.team.id})
        form = self.env["crm.meta.form"].create({"name": "Offers", "form_id": FORM_ID, "page_id": page.id,
                                                 "consent_checkbox_key": "whatsapp_offers",
                                                 "consent_account_id": self.account.id})
        submitted = (fields.Datetime.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+0000")
        meta_lead = parse_lead({"id": "555", "form_id": FORM_ID, "created_time": submitted,
                                "field_data": [],
                                "custom_disclaimer_responses": [{"checkbox_key": "whatsapp_offers",
                                                                 "is_checked": "1"}]})
        partner = self.env["res.partner"].create({"name": "Form Filler", "phone": "+15550101266"})
        form._consent_apply(meta_lead, partner)
        consent = self.consent(partner)
        self.assertEqual((consent.marketing, consent.opt_in_source), ("allowed", "lead_ads"))
        self.assertIn("Offers", consent.reason)

    # ------------------------------------------------------------ templates follow Meta

    def test_template_status_webhooks(self):
        followup = self.template("order_followup", category="utility", meta_template_id="1689556908129832")
        lead = self.customer_says("Hi").lead_id
        self.env["crm.whatsapp.message"].sudo().create({
            "direction": "out", "account_id": self.account.id, "partner_id": lead.partner_id.id,
            "lead_id": lead.id, "message_type": "template", "template_id": followup.id, "state": "read",
            "message_date": fields.Datetime.now() - timedelta(days=3)})
        self.deliver(sample("waba_template_status_paused"))
        self.assertEqual(followup.status, "paused")
        self.assertFalse(followup.can_send)
        self.assertIn("paused for 3 hours", followup.status_reason)
        with self.assertRaisesRegex(UserError, "Meta paused it"):
            self.unchecked_composer(lead, template_id=followup.id).action_send()
        self.assertFalse(self.env["crm.whatsapp.message"]._whatsapp_may_send_automatic(
            lead.partner_id, self.account, followup))
        toasts = bus_payloads(self.env, self.admin, "simple_notification")
        self.assertTrue(any("paused or disabled" in toast["message"] for toast in toasts))
        self.assertTrue(self.account.message_ids.filtered(lambda m: "order_followup" in str(m.body)))

        self.deliver(sample("waba_template_status_disabled"))
        self.assertEqual(followup.status, "disabled")
        # The PAUSED notification again, sent before DISABLED and redelivered late, changes nothing.
        late = sample("waba_template_status_paused")
        late["entry"][0]["time"] = 1764670000
        self.deliver(late)
        self.assertEqual(followup.status, "disabled")

        self.deliver(sample("waba_template_status_paused", event="REINSTATED", other_info={}))
        self.assertEqual(followup.status, "disabled", "older than the DISABLED event")
        reinstated = sample("waba_template_status_paused", event="REINSTATED", other_info={})
        reinstated["entry"][0]["time"] = 1764680000
        self.deliver(reinstated)
        self.assertEqual((followup.status, followup.can_send), ("approved", True))

    def test_rejected_template_keeps_the_reason(self):
        sale = self.template("spring_sale", language="ar", meta_template_id="1689556908129833", status="pending")
        self.deliver(sample("waba_template_status_rejected"))
        self.assertEqual((sale.status, sale.status_reason), ("rejected", "INCORRECT_CATEGORY"))
        self.assertIn("rejected", sale.send_block_reason)

    def test_quality_and_category_webhooks(self):
        followup = self.template("order_followup", category="utility", meta_template_id="1689556908129832")
        self.deliver(sample("waba_template_quality_red"))
        self.assertEqual((followup.quality, followup.can_send), ("red", False))
        self.assertNotIn(followup, self.env["crm.whatsapp.template"].search([("can_send", "=", True)]))
        self.assertIn("red", followup.send_block_reason)
        self.deliver(sample("waba_template_category_impending"))
        self.assertEqual((followup.category, followup.upcoming_category), ("utility", "marketing"))
        self.deliver(sample("waba_template_category_update"))
        self.assertEqual((followup.category, followup.upcoming_category), ("marketing", False))
        unknown = sample("waba_template_quality_red", message_template_id=1, message_template_name="nope")
        self.deliver(unknown)
        self.assertEqual(self.env["crm.inbox.event"].search([], limit=1).state, "done")

    def test_template_sync_reads_quality_header_and_url_button(self):
        path = f"/{WABA_ID}/message_templates"
        self.graph.respond(path, (200, {"data": [
            {"name": "invoice_ready", "language": "en_US", "status": "APPROVED", "category": "UTILITY", "id": "t9",
             "quality_score": {"score": "RED", "date": 1764671000},
             "components": [{"type": "HEADER", "format": "DOCUMENT"}, {"type": "BODY", "text": "Hi {{1}}"},
                            {"type": "BUTTONS", "buttons": [
                                {"type": "URL", "text": "Pay", "url": "https://pay.test/{{1}}"}]}]}]}))
        self.account.with_user(self.admin).action_sync_templates()
        template = self.account.template_ids
        self.assertEqual((template.header_format, template.url_button_index, template.url_button_url),
                         ("document", 0, "https://pay.test/{{1}}"))
        self.assertEqual((template.unsupported_reason, template.quality, template.can_send), (False, "red", False))

    # ------------------------------------------------------------ media headers and URL buttons

    def test_image_header_and_url_button_template(self):
        lead = self.customer_says("Hi", hours_ago=30).lead_id
        invoice = self.template("invoice_ready", category="utility", header_format="image", url_button_index=1,
                                url_button_url="https://shop.test/orders/{{1}}", buttons="Call us\nTrack")
        composer = self.unchecked_composer(lead, template_id=invoice.id, button_variable="SO-0042")
        with self.assertRaisesRegex(UserError, "header file"):
            composer.action_send()
        composer = self.unchecked_composer(lead, template_id=invoice.id, header_file=base64.b64encode(PNG),
                                           header_filename="offer.png")
        with self.assertRaisesRegex(UserError, "button link ending"):
            composer.action_send()
        composer = self.composer(lead, template_id=invoice, header_file=base64.b64encode(PNG),
                                 header_filename="offer.png", button_variable="SO-0042")
        self.assertIn("[Image: offer.png]", composer.preview)
        self.assertIn("https://shop.test/orders/SO-0042", composer.preview)
        composer.action_send()
        [upload] = self.sent_to_meta(MEDIA_PATH)
        self.assertEqual(upload["form"]["type"], "image/png")
        self.assertEqual(upload["files"]["file"][1], PNG)
        [request] = self.sent_to_meta(MESSAGES_PATH)
        self.assertEqual(request["json"]["template"]["components"], [
            {"type": "header", "parameters": [{"type": "image", "image": {"id": "MEDIA-HEADER-1"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Layla Haddad"}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "SO-0042"}]},
        ])
        sent = lead.whatsapp_message_ids.filtered(lambda m: m.direction == "out")
        self.assertEqual((sent.template_url_value, sent.attachment_ids.name), ("SO-0042", "offer.png"))

    def test_header_file_of_the_wrong_kind_is_refused(self):
        lead = self.customer_says("Hi").lead_id
        video = self.template("tour", category="utility", header_format="video")
        composer = self.composer(lead, template_id=video, header_file=base64.b64encode(PNG),
                                 header_filename="offer.png")
        with self.assertRaisesRegex(UserError, "video"):
            composer.action_send()
        self.assertFalse(self.sent_to_meta(MEDIA_PATH))
        self.composer(lead, template_id=video, header_file=base64.b64encode(b"\x00\x00\x00\x18ftypmp42"),
                      header_filename="tour.mp4").action_send()
        [upload] = self.sent_to_meta(MEDIA_PATH)
        self.assertEqual(upload["form"]["type"], "video/mp4")
        [request] = self.sent_to_meta(MESSAGES_PATH)
        self.assertEqual(request["json"]["template"]["components"][0]["parameters"],
                         [{"type": "video", "video": {"id": "MEDIA-HEADER-1"}}])

    # ------------------------------------------------------------ API

    def test_consent_in_the_lead_rows(self):
        lead = self.customer_says("Hello").lead_id
        [row] = lead._api_lead_dicts()
        self.assertEqual((row["whatsapp_marketing_consent"], row["whatsapp_consent_source"]),
                         ("allowed", "conversation"))
        self.assertEqual(lead.whatsapp_marketing_consent, "allowed")
        self.env.cr.execute("UPDATE crm_lead SET write_date = now() at time zone 'UTC' - interval '1 day' "
                            "WHERE id = %s", [lead.id])
        lead.invalidate_recordset(["write_date"])
        before = lead.write_date
        self.customer_says("STOP")
        [row] = lead._api_lead_dicts()
        self.assertEqual(row["whatsapp_marketing_consent"], "stopped")
        self.assertEqual(lead.whatsapp_marketing_consent, "stopped")
        self.assertGreater(lead.write_date, before, "the lead row is exported again with its new consent")
