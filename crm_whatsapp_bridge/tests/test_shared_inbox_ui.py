import json
from datetime import timedelta

from freezegun import freeze_time

from odoo.tests import Form, TransactionCase, new_test_user, tagged

from odoo.addons.mail.tools.discuss import Store

from ..tools.payload import StatusUpdate
from .common import bus_payloads
from .test_assignment_sla import MESSAGES_PATH, WEDNESDAY_10, SharedInboxMixin

ARABIC = "ar_001"


@tagged("post_install", "-at_install")
class TestSharedInboxUi(SharedInboxMixin, TransactionCase):
    """Composer quick replies and guidance, state names, one email per burst, live updates."""

    def composer(self, lead, user):
        return Form(self.env["crm.whatsapp.composer"].with_user(user).with_context(
            active_model="crm.lead", active_id=lead.id))

    @freeze_time(WEDNESDAY_10)
    def test_quick_reply_fills_the_names_and_goes_out(self):
        lead = self.lead_of("15550200200")
        canned = self.env["mail.canned.response"].with_user(self.amal).create({
            "source": "hello", "substitution": "Hello {customer}, this is {salesperson}. How can I help?"})
        form = self.composer(lead, self.amal)
        form.canned_response_id = canned
        self.assertEqual(form.body, f"Hello {lead.partner_id.name}, this is Amal Day. How can I help?")
        form.save().action_send()
        self.send_queued()
        [request] = self.graph.received(MESSAGES_PATH)
        self.assertEqual(request["json"]["text"]["body"],
                         f"Hello {lead.partner_id.name}, this is Amal Day. How can I help?")
        self.assertEqual(lead.whatsapp_conversation_id.sla_state, "met")

    def test_composer_focuses_the_message_and_locks_the_lead(self):
        arch = self.env["crm.whatsapp.composer"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertRegex(arch, r'<field name="lead_id"[^>]*readonly="1"')
        self.assertRegex(arch, r'<field name="body"[^>]*default_focus="1"')
        self.assertRegex(arch, r'<field name="body"[^>]*invisible="template_id or not window_open"')

    def test_outside_the_window_without_templates_points_to_sync(self):
        with freeze_time(WEDNESDAY_10 - timedelta(hours=30)):
            lead = self.lead_of("15550200210")
        with freeze_time(WEDNESDAY_10):
            form = self.composer(lead, self.amal)
            self.assertFalse(form.window_open)
            self.assertFalse(form.has_templates)
        arch = self.env["crm.whatsapp.composer"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn("action_sync_account_templates", arch)
        self.assertIn('invisible="window_open or has_templates"', arch)

    def test_a_burst_makes_one_email_until_someone_replies(self):
        emailed = new_test_user(self.env, login="emma", name="Emma Email", email="emma@example.com",
                                groups="sales_team.group_sale_salesman", notification_type="email")
        self.account.write({"assignment_rule": "fixed", "user_id": emailed.id})

        def emails():
            return self.env["mail.notification"].search_count([
                ("res_partner_id", "=", emailed.partner_id.id), ("notification_type", "=", "email"),
                ("mail_message_id.model", "=", "crm.lead")])

        with freeze_time(WEDNESDAY_10):
            lead = self.lead_of("15550200220")
        for minute in (1, 2):
            with freeze_time(WEDNESDAY_10 + timedelta(minutes=minute)):
                self.customer_writes("15550200220", f"message {minute}")
        self.assertEqual(emails(), 1)
        with freeze_time(WEDNESDAY_10 + timedelta(minutes=3)):
            self.reply(lead)
        with freeze_time(WEDNESDAY_10 + timedelta(minutes=4)):
            self.customer_writes("15550200220", "after the reply")
        self.assertEqual(emails(), 2)

    @freeze_time(WEDNESDAY_10)
    def test_chatter_shows_the_current_state_in_the_readers_language(self):
        self.env["res.lang"]._activate_lang(ARABIC)
        self.env["ir.module.module"].search([("name", "=", "crm_whatsapp_bridge")])._update_translations(ARABIC)
        lead = self.lead_of("15550200230")
        sent = self.reply(lead)
        self.send_queued()
        entry = sent.mail_message_id
        self.assertIn("Sent", str(entry.body))
        sent._apply_status(StatusUpdate(wamid=sent.wamid, status="read", timestamp=WEDNESDAY_10,
                                        recipient_id=sent.wa_id))

        def rendered(lang):
            data = Store(entry.with_context(lang=lang), for_current_user=True).get_result()
            return next(m["body"] for m in data["mail.message"] if m["id"] == entry.id)

        self.assertIn("Read", str(rendered("en_US")))
        arabic = str(rendered(ARABIC))
        self.assertIn("مقروءة", arabic)
        self.assertNotIn(">Read<", arabic)
        entry.sudo().body = "<p>stale snapshot</p>"
        self.assertIn("مقروءة", str(rendered(ARABIC)), "rendered from the state, not from the stored text")

    @freeze_time(WEDNESDAY_10)
    def test_new_messages_and_statuses_reach_the_open_lead_and_the_team_live(self):
        lead = self.lead_of("15550200240")
        self.env.cr.precommit.run()
        channel = f'"crm.lead",{lead.id}]'
        self.env["bus.bus"].sudo().search([]).unlink()
        sent = self.reply(lead)
        self.send_queued()
        sent._apply_status(StatusUpdate(wamid=sent.wamid, status="delivered", timestamp=WEDNESDAY_10,
                                        recipient_id=sent.wa_id))
        self.env.cr.precommit.run()
        on_lead = [json.loads(b.message)["payload"] for b in self.env["bus.bus"].sudo().search(
            [("channel", "like", channel)])]
        self.assertIn({"lead_id": lead.id, "message_ids": sent.mail_message_id.ids}, on_lead)
        for member in (self.amal, self.badr, self.leader):
            self.assertIn(lead.id, [p["lead_id"] for p in bus_payloads(
                self.env, member, "crm_whatsapp_bridge/lead_update")], member.name)
        data = lead.with_user(self.amal).whatsapp_live_messages(sent.mail_message_id.ids)
        self.assertIn("Delivered", str(data["mail.message"][0]["body"]))
