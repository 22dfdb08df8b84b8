from datetime import datetime, timedelta

from odoo import fields
from odoo.tests import TransactionCase, tagged

from ..models import crm_inbox_event
from .common import WhatsappTestMixin, bus_payloads, notification, text_message, typed_message
from .fake_graph import graph_error_body

CTWA_REFERRAL = {
    "source_url": "https://fb.me/3cr4Wqqkv", "source_id": "120210000000000001", "source_type": "ad",
    "headline": "Spring offer: 20% off", "body": "Chat with us on WhatsApp", "media_type": "image",
    "ctwa_clid": "ARAkLkA8rmlFeiCk",
}


@tagged("post_install", "-at_install")
class TestInboxProcessing(WhatsappTestMixin, TransactionCase):
    """From inbox rows to partners, leads, WhatsApp messages, chatter posts and notifications."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_whatsapp(graph_url=cls.start_fake_graph())
        cls.source_whatsapp = cls.env.ref("crm_whatsapp_bridge.utm_source_whatsapp")

    def setUp(self):
        super().setUp()
        self.graph.requests.clear()

    def _leads(self, partner):
        return self.env["crm.lead"].with_context(active_test=False).search([("partner_id", "=", partner.id)])

    def test_first_text_message_creates_partner_lead_and_chatter_post(self):
        message = text_message("15550101234", "مرحبا، أريد عرض سعر للباقة الذهبية")
        self.store(notification([message], contacts={"15550101234": "Layla Haddad"}))
        self.process_all()

        event = self.event_of(message["id"])
        self.assertEqual(event.state, "done", event.last_error)
        partner = self.env["res.partner"].search([("whatsapp_number", "=", "+15550101234")])
        self.assertEqual(len(partner), 1)
        self.assertEqual((partner.name, partner.phone), ("Layla Haddad", "+15550101234"))
        lead = self._leads(partner)
        self.assertEqual(len(lead), 1)
        self.assertEqual(event.lead_id, lead)
        self.assertEqual(lead.source_id, self.source_whatsapp)
        self.assertEqual(lead.team_id, self.team)
        self.assertEqual(lead.user_id, self.salesperson)
        self.assertEqual(lead.whatsapp_account_id, self.account)
        self.assertEqual(lead.name, "WhatsApp: Layla Haddad")
        self.assertEqual(lead.phone, "+15550101234")

        wa_message = lead.whatsapp_message_ids
        self.assertEqual(len(wa_message), 1)
        self.assertEqual((wa_message.wamid, wa_message.direction, wa_message.state, wa_message.message_type,
                          wa_message.wa_id, wa_message.partner_id),
                         (message["id"], "in", "received", "text", "15550101234", partner))
        self.assertEqual(wa_message.body, "مرحبا، أريد عرض سعر للباقة الذهبية")
        self.assertEqual(wa_message.message_date, datetime.utcfromtimestamp(int(message["timestamp"])))
        post = wa_message.mail_message_id
        self.assertEqual(post.model, "crm.lead")
        self.assertEqual(post.res_id, lead.id)
        self.assertEqual(post.author_id, partner)
        self.assertIn("مرحبا، أريد عرض سعر للباقة الذهبية", str(post.body))
        # The salesperson gets a Discuss inbox notification they can mark as read.
        notif = self.env["mail.notification"].search([("mail_message_id", "=", post.id),
                                                      ("res_partner_id", "=", self.salesperson.partner_id.id)])
        self.assertEqual((notif.notification_type, notif.is_read), ("inbox", False))
        self.assertNotIn(partner, lead.message_partner_ids, "the customer must not follow the lead")

    def test_salesperson_gets_bus_toast_with_lead(self):
        self.store(notification([text_message("15550101260", "hello")], contacts={"15550101260": "Nadia"}))
        self.process_all()
        toasts = bus_payloads(self.env, self.salesperson, "crm_whatsapp_bridge/new_message")
        lead = self.env["crm.lead"].search([("partner_id.name", "=", "Nadia")])
        self.assertEqual(len(toasts), 1)
        self.assertEqual(toasts[0]["lead_id"], lead.id)
        self.assertEqual(toasts[0]["message"], "New WhatsApp message from Nadia")

    def test_one_toast_per_lead_for_a_chunk(self):
        self.store(notification([text_message("15550101261", "a"), text_message("15550101261", "b"),
                                 text_message("15550101262", "c")],
                                contacts={"15550101261": "Fadi", "15550101262": "Hana"}))
        self.process_all()
        toasts = sorted(p["message"] for p in bus_payloads(self.env, self.salesperson,
                                                           "crm_whatsapp_bridge/new_message"))
        self.assertEqual(toasts, ["2 new WhatsApp messages from Fadi", "New WhatsApp message from Hana"])

    def test_next_messages_reuse_the_open_lead(self):
        first, second = text_message("15550101234", "one"), text_message("15550101234", "two")
        self.store(notification([first]))
        self.process_all()
        self.store(notification([second]))
        self.process_all()
        lead = self.event_of(first["id"]).lead_id
        self.assertEqual(self.event_of(second["id"]).lead_id, lead)
        self.assertEqual(sorted(lead.whatsapp_message_ids.mapped("body")), ["one", "two"])
        self.assertEqual(self.env["res.partner"].search_count([("whatsapp_number", "=", "+15550101234")]), 1)

    def test_a_burst_makes_one_inbox_notification_until_read(self):
        sender = "15550101300"

        def inbox_notifications():
            return self.env["mail.notification"].search([
                ("res_partner_id", "=", self.salesperson.partner_id.id), ("notification_type", "=", "inbox"),
                ("mail_message_id", "in", self.env["crm.whatsapp.message"].search(
                    [("wa_id", "=", sender)]).mail_message_id.ids)])

        self.store(notification([text_message(sender, "one"), text_message(sender, "two")]))
        self.process_all()
        self.store(notification([text_message(sender, "three")]))
        self.process_all()
        self.assertEqual(len(inbox_notifications()), 1, "one unread notification for the whole burst")
        inbox_notifications().is_read = True
        self.store(notification([text_message(sender, "four, after reading")]))
        self.process_all()
        self.assertEqual(len(inbox_notifications()), 2)
        self.assertEqual(len(inbox_notifications().filtered(lambda n: not n.is_read)), 1)
        self.assertIn("four, after reading", str(inbox_notifications().filtered(
            lambda n: not n.is_read).mail_message_id.body))

    def test_an_open_lead_of_no_company_is_reused(self):
        partner = self.env["res.partner"].create({"name": "Shared customer", "phone": "+15550101235"})
        lead = self.env["crm.lead"].create({"name": "Shared lead", "partner_id": partner.id, "company_id": False})
        self.assertFalse(lead.company_id)
        message = text_message("15550101235", "hello again")
        self.store(notification([message]))
        self.process_all()
        self.assertEqual(self.event_of(message["id"]).lead_id, lead)

    def test_won_lead_is_not_reused(self):
        first = text_message("15550101234", "buy")
        self.store(notification([first]))
        self.process_all()
        lead = self.event_of(first["id"]).lead_id
        lead.action_set_won()
        second = text_message("15550101234", "buy again")
        self.store(notification([second]))
        self.process_all()
        new_lead = self.event_of(second["id"]).lead_id
        self.assertTrue(new_lead)
        self.assertNotEqual(new_lead, lead)
        self.assertEqual(new_lead.partner_id, lead.partner_id)

    def test_existing_partner_found_by_formatted_phone(self):
        existing = self.env["res.partner"].create({"name": "Layla (from import)", "phone": "+966 50 123 4567"})
        existing_lead = self.env["crm.lead"].create({"name": "Website enquiry", "partner_id": existing.id})
        message = text_message("966501234567", "it's me")
        self.store(notification([message]))
        self.process_all()
        event = self.event_of(message["id"])
        self.assertEqual(event.lead_id, existing_lead, "the partner's open lead is reused")
        self.assertEqual(event.lead_id.partner_id, existing)
        self.assertEqual(existing_lead.whatsapp_account_id, self.account)
        self.assertEqual(existing.whatsapp_number, "+966501234567")

    def test_click_to_whatsapp_referral_sets_utm(self):
        message = text_message("15550101242", "Is the offer still on?", referral=CTWA_REFERRAL)
        self.store(notification([message]))
        self.process_all()
        lead = self.event_of(message["id"]).lead_id
        self.assertEqual(lead.campaign_id.name, "Spring offer: 20% off")
        self.assertEqual(lead.medium_id, self.env.ref("crm_whatsapp_bridge.utm_medium_whatsapp_ad"))
        self.assertEqual(lead.source_id, self.source_whatsapp)
        self.assertEqual((lead.whatsapp_ad_id, lead.whatsapp_ctwa_clid, lead.whatsapp_ad_url),
                         ("120210000000000001", "ARAkLkA8rmlFeiCk", "https://fb.me/3cr4Wqqkv"))
        self.assertIn("Spring offer: 20% off", str(lead.whatsapp_message_ids.mail_message_id.body))

    def test_every_message_type_is_recorded(self):
        sender = "15550101239"
        cases = {
            "interactive": (typed_message(sender, "interactive", {
                "type": "list_reply", "list_reply": {"id": "gold", "title": "Gold plan", "description": "12 months"}}),
                "Gold plan - 12 months"),
            "button": (typed_message(sender, "button", {"payload": "CALL_ME", "text": "Call me back"}), "Call me back"),
            "location": (typed_message(sender, "location", {
                "latitude": 24.7136, "longitude": 46.6753, "name": "Main showroom", "address": "King Fahd Rd"}),
                "Main showroom, King Fahd Rd"),
            "contacts": (typed_message(sender, "contacts", None, contacts=[{
                "name": {"formatted_name": "Rami Fares"}, "phones": [{"phone": "+1 555 0101 240"}],
                "emails": [{"email": "rami@example.com"}]}]), "Rami Fares, +1 555 0101 240, rami@example.com"),
            "reaction": (typed_message(sender, "reaction", {"message_id": "wamid.X", "emoji": "👍"}), "Reacted 👍"),
            "unsupported": (typed_message(sender, "unsupported", None, errors=[{
                "code": 131051, "title": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."}}]),
                "Message type is currently not supported."),
            "hologram": (typed_message(sender, "hologram", {"id": "1"}), "hologram"),
        }
        self.store(notification([message for message, _text in cases.values()]))
        self.process_all()
        for kind, (message, expected_text) in cases.items():
            event = self.event_of(message["id"])
            self.assertEqual(event.state, "done", f"{kind}: {event.last_error}")
            wa_message = self.env["crm.whatsapp.message"].search([("wamid", "=", message["id"])])
            self.assertIn(expected_text, str(wa_message.mail_message_id.body), kind)
        unknown = self.env["crm.whatsapp.message"].search([("wamid", "=", cases["hologram"][0]["id"])])
        self.assertEqual((unknown.message_type, unknown.original_type), ("unsupported", "hologram"))
        unsupported = self.env["crm.whatsapp.message"].search([("wamid", "=", cases["unsupported"][0]["id"])])
        self.assertEqual(unsupported.error_code, 131051)
        self.assertEqual(len(self.event_of(cases["button"][0]["id"]).lead_id.whatsapp_message_ids), len(cases))

    def test_chatter_escapes_customer_text(self):
        message = text_message("15550101234", "<script>alert(1)</script> & <b>bold</b>")
        self.store(notification([message]))
        self.process_all()
        body = str(self.env["crm.whatsapp.message"].search([("wamid", "=", message["id"])]).mail_message_id.body)
        self.assertNotIn("<script>", body)
        self.assertIn("&lt;script&gt;", body)

    def test_media_is_downloaded_into_a_chatter_attachment(self):
        self.graph.add_media("1003383421387299", b"%PDF-1.4 fake rfq", "application/pdf")
        message = typed_message("15550101236", "document", {
            "caption": "requirements", "filename": "rfq.pdf", "mime_type": "application/pdf",
            "sha256": "x", "id": "1003383421387299"})
        self.store(notification([message]))
        self.process_all()
        self.assertEqual(self.event_of(message["id"]).state, "done", self.event_of(message["id"]).last_error)
        wa_message = self.env["crm.whatsapp.message"].search([("wamid", "=", message["id"])])
        attachment = wa_message.attachment_ids
        self.assertEqual((attachment.name, attachment.raw, attachment.mimetype),
                         ("rfq.pdf", b"%PDF-1.4 fake rfq", "application/pdf"))
        self.assertEqual((attachment.res_model, attachment.res_id), ("crm.lead", wa_message.lead_id.id))
        self.assertEqual(wa_message.mail_message_id.attachment_ids, attachment)
        self.assertEqual((wa_message.body, wa_message.media_id), ("requirements", "1003383421387299"))
        self.assertEqual(self.graph.paths(), ["/1003383421387299", "/download/1003383421387299"])
        self.assertTrue(all(r["authorization"] == "Bearer EAAG-test-token" for r in self.graph.requests))

    def test_media_download_is_retried_on_server_errors(self):
        self.graph.add_media("2001", b"\xff\xd8jpeg", "image/jpeg")
        self.graph.respond("/2001", (503, graph_error_body(2, "Service temporarily unavailable")),
                           (200, {"url": self.graph.url + "/download/2001", "mime_type": "image/jpeg", "id": "2001"}))
        message = typed_message("15550101235", "image", {"mime_type": "image/jpeg", "sha256": "x", "id": "2001"})
        self.store(notification([message]))
        self.process_all()
        self.assertEqual(self.event_of(message["id"]).state, "done")
        self.assertEqual(self.graph.paths(), ["/2001", "/2001", "/download/2001"])
        attachment = self.env["crm.whatsapp.message"].search([("wamid", "=", message["id"])]).attachment_ids
        self.assertEqual(attachment.raw, b"\xff\xd8jpeg")
        self.assertTrue(attachment.name.endswith(".jpg"))

    def test_failed_event_is_retried_then_dead_and_admins_notified(self):
        self.graph.respond("/3001", (500, graph_error_body(1, "An unknown error occurred", "OAuthException")))
        bad = typed_message("15550101270", "image", {"mime_type": "image/jpeg", "sha256": "x", "id": "3001"})
        good = text_message("15550101271", "I am fine")
        self.store(notification([bad, good]))
        self.process_all()
        bad_event, good_event = self.event_of(bad["id"]), self.event_of(good["id"])
        self.assertEqual(good_event.state, "done", "a failing event never blocks its batch")
        self.assertEqual((bad_event.state, bad_event.attempts), ("pending", 1))
        self.assertIn("unknown error", bad_event.last_error)
        self.assertGreater(bad_event.next_attempt_at, fields.Datetime.now() + timedelta(seconds=50))
        # Nothing half-written for the failed event.
        self.assertFalse(self.env["res.partner"].search([("whatsapp_number", "=", "+15550101270")]))
        self.assertFalse(self.env["crm.whatsapp.message"].search([("wamid", "=", bad["id"])]))

        delays = []
        for _attempt in range(2, crm_inbox_event.MAX_ATTEMPTS + 1):
            delays.append(bad_event.next_attempt_at - bad_event.write_date)
            bad_event.next_attempt_at = fields.Datetime.now() - timedelta(seconds=1)
            self.process_all()
        self.assertEqual(bad_event.state, "dead")
        self.assertEqual(bad_event.attempts, crm_inbox_event.MAX_ATTEMPTS)
        self.assertEqual([round(d.total_seconds() / 60) for d in delays], [1, 2, 4, 8], "exponential backoff")
        notified = bad_event.message_ids.filtered(lambda m: self.admin.partner_id in m.partner_ids)
        self.assertEqual(len(notified), 1)
        self.assertIn("could not be processed", str(notified.body))

        # Once Meta answers again, Requeue brings the event back and it goes through.
        self.graph.add_media("3001", b"jpeg", "image/jpeg")
        bad_event.with_user(self.admin).action_requeue()
        self.assertEqual((bad_event.state, bad_event.attempts), ("pending", 0))
        self.process_all()
        self.assertEqual(bad_event.state, "done")
        self.assertTrue(bad_event.lead_id)

    def test_expired_token_is_dead_at_once_without_retry_storm(self):
        self.graph.respond("/4001", (401, graph_error_body(190, "Error validating access token")))
        message = typed_message("15550101290", "image", {"mime_type": "image/jpeg", "sha256": "x", "id": "4001"})
        self.store(notification([message]))
        self.process_all()
        event = self.event_of(message["id"])
        self.assertEqual((event.state, event.attempts), ("dead", 1))
        self.assertIn("(code 190)", event.last_error)
        self.assertEqual(self.graph.paths(), ["/4001"], "an expired token is never retried")
        self.assertTrue(event.message_ids.filtered(lambda m: self.admin.partner_id in m.partner_ids))

    def test_malformed_event_is_dead_at_once(self):
        message = typed_message("15550101280", "location", {"name": "no coordinates"})
        self.store(notification([message]))
        self.process_all()
        event = self.event_of(message["id"])
        self.assertEqual((event.state, event.attempts), ("dead", 1))
        self.assertIn("Malformed event", event.last_error)

    def test_reprocessing_a_done_message_is_idempotent(self):
        message = text_message("15550101234", "only once")
        self.store(notification([message]))
        self.process_all()
        event = self.event_of(message["id"])
        event.write({"state": "pending"})
        self.process_all()
        self.assertEqual(event.state, "done")
        self.assertEqual(self.env["crm.whatsapp.message"].search_count([("wamid", "=", message["id"])]), 1)
        self.assertEqual(len(event.lead_id.message_ids.filtered(lambda m: "only once" in str(m.body))), 1)

    def test_statuses_move_forward_only(self):
        lead = self.env["crm.lead"].create({"name": "Outbound test", "user_id": self.salesperson.id})
        outbound = self.env["crm.whatsapp.message"].create({
            "wamid": "wamid.OUT42", "direction": "out", "account_id": self.account.id,
            "lead_id": lead.id, "wa_id": "15550101234", "state": "queued", "body": "Your quote"})

        def status(state, ts, **extra):
            return dict({"id": "wamid.OUT42", "status": state, "timestamp": str(ts),
                         "recipient_id": "15550101234"}, **extra)

        self.store(notification(statuses=[status("read", 1732450760)]))
        self.process_all()
        self.assertEqual(outbound.state, "read")
        self.store(notification(statuses=[
            status("sent", 1732450700, conversation={"id": "conv1", "origin": {"type": "service"}},
                   pricing={"billable": True, "pricing_model": "CBP", "category": "service"}),
            status("delivered", 1732450730)]))
        self.process_all()
        self.assertEqual(outbound.state, "read", "a late sent/delivered never overwrites read")
        self.assertEqual((outbound.conversation_id, outbound.pricing_category, outbound.billable),
                         ("conv1", "service", True))

        failing = self.env["crm.whatsapp.message"].create({
            "wamid": "wamid.OUT43", "direction": "out", "account_id": self.account.id,
            "wa_id": "15550101234", "state": "sent"})
        self.store(notification(statuses=[{
            "id": "wamid.OUT43", "status": "failed", "timestamp": "1732450820", "recipient_id": "15550101234",
            "errors": [{"code": 131047, "title": "Re-engagement message",
                        "error_data": {"details": "More than 24 hours have passed."}}]}]))
        self.process_all()
        self.assertEqual((failing.state, failing.error_code, failing.error_message),
                         ("failed", 131047, "More than 24 hours have passed."))

    def test_status_before_its_message_waits_then_is_ignored(self):
        self.store(notification(statuses=[{"id": "wamid.NOPE", "status": "sent", "timestamp": "1732450700",
                                           "recipient_id": "15550101234"}]))
        self.process_all()
        event = self.event_of("wamid.NOPE:sent")
        self.assertEqual((event.state, event.attempts), ("pending", 0), "may be a message not committed yet")
        self.assertTrue(event.next_attempt_at)
        # Ten minutes later the message still is not known: sent from outside Odoo, ignored.
        self.env.cr.execute("UPDATE crm_inbox_event SET create_date = create_date - interval '11 minutes', "
                            "next_attempt_at = NULL WHERE id = %s", [event.id])
        event.invalidate_recordset()
        self.process_all()
        self.assertEqual(event.state, "done")

    def test_status_waiting_for_its_message_is_applied_once_it_exists(self):
        self.store(notification(statuses=[{"id": "wamid.LATE", "status": "delivered", "timestamp": "1732450700",
                                           "recipient_id": "15550101234"}]))
        self.process_all()
        message = self.env["crm.whatsapp.message"].create({
            "wamid": "wamid.LATE", "direction": "out", "account_id": self.account.id,
            "wa_id": "15550101234", "state": "queued", "body": "sent from Odoo"})
        self.event_of("wamid.LATE:delivered").next_attempt_at = False
        self.process_all()
        self.assertEqual(message.state, "delivered")

    # ------------------------------------------------------------------
    # Messages that never open a lead (issue 12, condition 6)
    # ------------------------------------------------------------------

    def test_reaction_of_unknown_customer_is_recorded_on_the_contact(self):
        sender = "15550101400"
        reaction = typed_message(sender, "reaction", {"message_id": "wamid.X", "emoji": "❤️"})
        system = typed_message(sender, "system", {"body": "Customer changed number", "type": "user_changed_number"})
        self.store(notification([reaction, system], contacts={sender: "Rasha"}))
        self.process_all()
        partner = self.env["res.partner"].search([("whatsapp_number", "=", "+" + sender)])
        self.assertEqual(len(partner), 1)
        self.assertFalse(self._leads(partner), "a reaction or a system message never opens a lead")
        for message in (reaction, system):
            event = self.event_of(message["id"])
            self.assertEqual((event.state, event.lead_id.id), ("done", False), event.last_error)
            wa_message = self.env["crm.whatsapp.message"].search([("wamid", "=", message["id"])])
            self.assertFalse(wa_message.lead_id)
            self.assertEqual(wa_message.partner_id, partner)
            post = wa_message.mail_message_id
            self.assertEqual((post.model, post.res_id), ("res.partner", partner.id))
        self.assertIn("Reacted ❤️ to a message", str(self.env["crm.whatsapp.message"].search(
            [("wamid", "=", reaction["id"])]).mail_message_id.body))
        self.assertFalse(bus_payloads(self.env, self.salesperson, "crm_whatsapp_bridge/new_message"))

    def test_reaction_and_unsupported_message_go_to_the_latest_won_lead(self):
        sender = "15550101401"
        first = text_message(sender, "I'll take it")
        self.store(notification([first]))
        self.process_all()
        won = self.event_of(first["id"]).lead_id
        won.action_set_won()
        reaction = typed_message(sender, "reaction", {"message_id": first["id"], "emoji": "👍"})
        unknown = typed_message(sender, "hologram", {"id": "1"})
        self.store(notification([reaction, unknown]))
        self.process_all()
        self.assertEqual(self.event_of(reaction["id"]).lead_id, won)
        self.assertEqual(self.event_of(unknown["id"]).lead_id, won)
        self.assertEqual(len(self._leads(won.partner_id)), 1)
        self.assertEqual(len(won.whatsapp_message_ids), 3)
        # A real message after the sale opens a new lead, as before.
        again = text_message(sender, "Another order please")
        self.store(notification([again]))
        self.process_all()
        self.assertNotEqual(self.event_of(again["id"]).lead_id, won)
        self.assertEqual(len(self._leads(won.partner_id)), 2)

    # ------------------------------------------------------------------
    # Matching existing contacts (issue 12, condition 7)
    # ------------------------------------------------------------------

    def test_contact_whose_phone_is_the_number_and_mobile_another_is_found(self):
        Partner = self.env["res.partner"]
        by_phone = Partner.create({"name": "Khalid (import)", "phone": "+966 50 765 4321",
                                   "mobile": "+966 55 000 1111"})
        by_mobile_00 = Partner.create({"name": "Mona (import)", "phone": "+966 11 222 3333",
                                       "mobile": "00966 50 765 9999"})
        by_sanitized = Partner.create({"name": "Fares (import)", "mobile": "+966 50 765 8888"})
        self.assertNotEqual(by_phone.phone_sanitized, "+966507654321", "the mobile wins in phone_sanitized")
        messages = {partner: text_message(wa_id, f"hello from {partner.name}") for partner, wa_id in (
            (by_phone, "966507654321"), (by_mobile_00, "966507659999"), (by_sanitized, "966507658888"))}
        # One chunk: the three numbers are matched together.
        self.store(notification(list(messages.values())))
        self.process_all()
        for partner, message in messages.items():
            event = self.event_of(message["id"])
            self.assertEqual(event.lead_id.partner_id, partner, partner.name)
            self.assertEqual(partner.whatsapp_number, "+" + message["from"])
        self.assertEqual(Partner.search_count([("whatsapp_number", "in", ["+966507654321", "+966507659999",
                                                                          "+966507658888"])]), 3)

    # ------------------------------------------------------------------
    # Batches
    # ------------------------------------------------------------------

    def test_new_customers_of_a_chunk_get_one_contact_and_one_lead_each(self):
        senders = [f"1555010150{i}" for i in range(5)]
        self.store(notification([text_message(sender, f"{sender} #{n}") for n in range(3) for sender in senders]))
        self.process_all()
        for sender in senders:
            partner = self.env["res.partner"].search([("whatsapp_number", "=", "+" + sender)])
            self.assertEqual(len(partner), 1)
            lead = self._leads(partner)
            self.assertEqual(len(lead), 1)
            self.assertEqual(lead.whatsapp_message_ids.sorted("id").mapped("body"),
                             [f"{sender} #{n}" for n in range(3)], "arrival order kept")
            self.assertEqual(lead.whatsapp_unread_count, 3)
        toasts = bus_payloads(self.env, self.salesperson, "crm_whatsapp_bridge/new_message")
        self.assertEqual(len(toasts), len(senders), "one toast per lead and chunk")
        self.assertTrue(all(t["message"].startswith("3 new WhatsApp messages from") for t in toasts))

    def test_an_event_failing_inside_the_batch_fails_alone(self):
        # A real database refusal (not a mock): contacts named "Poison" cannot be inserted.
        self.env.cr.execute("ALTER TABLE res_partner ADD CONSTRAINT cwb_test_poison CHECK (name <> 'Poison')")
        good = [text_message("15550101601", "fine 1"), text_message("15550101602", "fine 2")]
        bad = [text_message("15550101600", "poisoned 1"), text_message("15550101600", "poisoned 2")]
        later = text_message("15550101603", "fine 3")
        self.store(notification([good[0], bad[0], good[1], bad[1], later],
                                contacts={"15550101600": "Poison", "15550101601": "Good One",
                                          "15550101602": "Good Two", "15550101603": "Good Three"}))
        self.process_all()
        for message in (*good, later):
            event = self.event_of(message["id"])
            self.assertEqual(event.state, "done", event.last_error)
            self.assertTrue(event.lead_id)
        for message in bad:
            event = self.event_of(message["id"])
            self.assertEqual((event.state, event.attempts), ("pending", 1))
            self.assertIn("cwb_test_poison", event.last_error)
        # Nothing half-written for the failed customer.
        self.assertFalse(self.env["res.partner"].search([("phone_sanitized", "=", "+15550101600")]))
        self.assertFalse(self.env["crm.whatsapp.message"].search([("wamid", "in", [m["id"] for m in bad])]))
        toasts = bus_payloads(self.env, self.salesperson, "crm_whatsapp_bridge/new_message")
        self.assertEqual(sorted(t["message"] for t in toasts), [
            "New WhatsApp message from Good One", "New WhatsApp message from Good Three",
            "New WhatsApp message from Good Two"])
