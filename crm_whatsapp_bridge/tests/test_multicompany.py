from datetime import timedelta

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, TransactionCase, new_test_user, tagged

from .common import STANDARD_QUESTIONS, MetaTestMixin, notification, text_message
from .fake_graph import lead_object

PHONE_NUMBER_ID_B = "100000000000043"
PAGE_ID_B = "100000000000078"
FORM_ID_B = "900000000000012"
CUSTOMER = "966501110077"  # a valid Saudi mobile number, so its E.164 form is stored on contacts
CUSTOMER_E164 = "+966501110077"


class TwoCompaniesMixin(MetaTestMixin):
    """Company A (the main one) and company B, each with a WhatsApp number, a page and a form.

    Users: ``salesperson`` (A, own leads), ``manager_a`` (A, Sales Manager, no Settings),
    ``sales_b`` (B only, own leads) and ``admin`` (Settings, A only).
    """

    @classmethod
    def setup_two_companies(cls, graph_url="http://127.0.0.1:9"):
        cls.setup_meta(graph_url=graph_url)
        cls.company_a = cls.env.company
        cls.company_b = cls.env["res.company"].create({"name": "Company B"})
        cls.manager_a = new_test_user(cls.env, login="mc_manager_a", name="Mona Manager",
                                      groups="sales_team.group_sale_manager")
        cls.sales_b = new_test_user(cls.env, login="mc_sales_b", name="Basel B",
                                    groups="sales_team.group_sale_salesman", company_id=cls.company_b.id,
                                    company_ids=[(6, 0, cls.company_b.ids)])
        cls.team_b = cls.env["crm.team"].create({
            "name": "Team B", "company_id": cls.company_b.id, "member_ids": [(6, 0, cls.sales_b.ids)]})
        cls.account_b = cls.env["crm.whatsapp.account"].create({
            "name": "Line B", "phone_number_id": PHONE_NUMBER_ID_B, "access_token": "EAAG-token-b",
            "team_id": cls.team_b.id, "user_id": cls.sales_b.id, "company_id": cls.company_b.id})
        cls.page_b = cls.env["crm.meta.page"].create({
            "name": "Page B", "page_id": PAGE_ID_B, "access_token": "EAAP-page-b", "team_id": cls.team_b.id,
            "user_id": cls.sales_b.id, "company_id": cls.company_b.id})
        cls.form_b = cls.env["crm.meta.form"].create({
            "name": "Form B", "form_id": FORM_ID_B, "page_id": cls.page_b.id, "questions": STANDARD_QUESTIONS})
        cls.form_b._ensure_mapping_lines()

    def customer_writes(self, phone_number_id, sender=CUSTOMER, body="Hello"):
        message = text_message(sender, body)
        self.store(notification([message], phone_number_id=phone_number_id))
        self.process_all()
        return self.env["crm.whatsapp.message"].search([("wamid", "=", message["id"])])


@tagged("post_install", "-at_install")
class TestMultiCompany(TwoCompaniesMixin, TransactionCase):
    """Numbers, messages, pages, forms, inbox and analytics events belong to a company."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_two_companies(graph_url=cls.start_fake_graph())

    def test_customer_of_company_b_is_matched_only_with_b_or_shared_contacts(self):
        known_in_a = self.env["res.partner"].create({
            "name": "Known in A", "phone": CUSTOMER_E164, "company_id": self.company_a.id})
        message_b = self.customer_writes(PHONE_NUMBER_ID_B)
        partner_b, lead_b = message_b.partner_id, message_b.lead_id
        self.assertNotEqual(partner_b, known_in_a)
        self.assertEqual(partner_b.company_id, self.company_b)
        self.assertEqual((lead_b.company_id, lead_b.team_id, lead_b.user_id),
                         (self.company_b, self.team_b, self.sales_b))
        self.assertEqual(message_b.company_id, self.company_b)
        # The same person writing to company A's number is A's contact, with A's lead.
        message_a = self.customer_writes(self.account.phone_number_id)
        self.assertEqual(message_a.partner_id, known_in_a)
        self.assertEqual(message_a.lead_id.company_id, self.company_a)
        self.assertNotEqual(message_a.lead_id, lead_b)
        # A second message to B goes on B's lead, never on A's.
        self.assertEqual(self.customer_writes(PHONE_NUMBER_ID_B).lead_id, lead_b)

    def test_shared_contact_is_matched_by_every_company(self):
        shared = self.env["res.partner"].create({"name": "Shared", "phone": CUSTOMER_E164, "company_id": False})
        message = self.customer_writes(PHONE_NUMBER_ID_B)
        self.assertEqual(message.partner_id, shared)
        self.assertEqual(message.lead_id.company_id, self.company_b)

    def test_lead_ads_answer_of_page_b_goes_to_a_b_contact_and_lead(self):
        known_in_a = self.env["res.partner"].create({
            "name": "Known in A", "email": "rana@example.com", "company_id": self.company_a.id})
        self.graph.add_lead(lead_object("5100000000000001", FORM_ID_B, fields.Datetime.now() - timedelta(hours=1),
                                        {"full_name": "Rana", "email": "rana@example.com"}))
        self.store_leadgen("5100000000000001", page_id=PAGE_ID_B, form_id=FORM_ID_B)
        self.process_all()
        event = self.event_of("5100000000000001")
        self.assertEqual(event.state, "done", event.last_error)
        self.assertEqual((event.company_id, event.lead_id.company_id), (self.company_b, self.company_b))
        self.assertNotEqual(event.lead_id.partner_id, known_in_a)
        self.assertEqual(event.lead_id.partner_id.company_id, self.company_b)

    def test_salesperson_of_a_never_reads_company_b_records(self):
        # An unassigned lead of B: the rule used to admit its messages to every salesperson.
        self.account_b.user_id = False
        message_b = self.customer_writes(PHONE_NUMBER_ID_B)
        message_a = self.customer_writes(self.account.phone_number_id, sender="966501110099")
        self.assertFalse(message_b.lead_id.user_id)
        Message = self.env["crm.whatsapp.message"]
        self.assertEqual(Message.with_user(self.salesperson).search([]), message_a)
        self.assertEqual(Message.with_user(self.sales_b).search([]), message_b)
        self.assertEqual(Message.with_user(self.manager_a).search([]), message_a)
        with self.assertRaises(AccessError):
            message_b.with_user(self.salesperson).read(["body"])
        with self.assertRaises(AccessError):
            message_b.lead_id.with_user(self.salesperson).read(["name"])
        for model, own_a, own_b in [
            ("crm.whatsapp.account", self.account, self.account_b),
            ("crm.meta.page", self.page, self.page_b),
            ("crm.meta.form", self.form, self.form_b),
            ("crm.meta.form.mapping", self.form.mapping_ids, self.form_b.mapping_ids),
        ]:
            for user in (self.salesperson, self.manager_a):
                self.assertEqual(self.env[model].with_user(user).search([]), own_a, f"{model} as {user.login}")
            self.assertEqual(self.env[model].with_user(self.sales_b).search([]), own_b, model)

    def test_templates_belong_to_their_number_company(self):
        template_b = self.env["crm.whatsapp.template"].create({
            "name": "offer_b", "language": "en", "account_id": self.account_b.id, "status": "approved",
            "category": "utility", "body": "Hi"})
        self.assertEqual(template_b.company_id, self.company_b)
        Template = self.env["crm.whatsapp.template"]
        self.assertNotIn(template_b, Template.with_user(self.salesperson).search([]))
        self.assertIn(template_b, Template.with_user(self.sales_b).search([]))

    def test_inbox_event_gets_its_company_once_routed(self):
        self.store(notification([text_message(CUSTOMER, "hi")], phone_number_id=PHONE_NUMBER_ID_B))
        event = self.env["crm.inbox.event"].search([("channel_ref", "=", PHONE_NUMBER_ID_B)])
        self.assertFalse(event.company_id)
        admin_a = self.admin  # Settings admin of company A only
        self.assertEqual(event.with_user(admin_a).search([("id", "=", event.id)]), event)
        self.process_all()
        self.assertEqual(event.company_id, self.company_b)
        self.assertFalse(event.with_user(admin_a).search([("id", "=", event.id)]))

    def test_analytics_events_take_the_lead_company(self):
        lead_b = self.env["crm.lead"].create({"name": "B lead", "company_id": self.company_b.id})
        Event = self.env["crm.analytics.event"]
        [event_id] = Event._enqueue([{"destination": "ga4", "name": "qualify_lead", "dedup_key": "mc:1",
                                      "lead_id": lead_b.id, "batch_key": "1.2", "payload": {}}])
        event = Event.browse(event_id)
        self.assertEqual(event.company_id, self.company_b)
        self.assertFalse(Event.with_user(self.admin).search([("id", "=", event_id)]))

    def test_number_cannot_take_a_team_or_salesperson_of_another_company(self):
        team_a = self.env["crm.team"].create({"name": "Team A", "company_id": self.company_a.id})
        with self.assertRaises(UserError):
            self.account_b.write({"team_id": team_a.id})
        with self.assertRaises(UserError):
            self.page_b.write({"user_id": self.salesperson.id})
        self.assertEqual((self.account_b.team_id, self.page_b.user_id), (self.team_b, self.sales_b))


@tagged("post_install", "-at_install")
class TestSetupRights(TwoCompaniesMixin, TransactionCase):
    """Sales Managers set numbers and pages up; the token stays with Settings admins, who are named."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_two_companies()

    def test_manager_creates_a_number_and_is_told_who_sets_the_token(self):
        account = self.env["crm.whatsapp.account"].with_user(self.manager_a).create({
            "name": "New line", "phone_number_id": "100000000000099", "team_id": self.team.id})
        self.assertEqual(account.company_id, self.company_a)
        self.assertFalse(account.access_token_set)
        self.assertIn("Adam Admin", account.access_token_notice)
        with self.assertRaises(AccessError):
            account.write({"access_token": "EAAG-manager"})
        page = self.env["crm.meta.page"].with_user(self.manager_a).create({"name": "New page", "page_id": "42"})
        self.assertIn("Adam Admin", page.access_token_notice)
        account.with_user(self.admin).write({"access_token": "EAAG-admin"})
        account.invalidate_recordset()
        self.assertTrue(account.access_token_set)
        self.assertFalse(account.access_token_notice)

    def test_the_notice_is_shown_to_managers_only(self):
        arch = self.env["crm.whatsapp.account"].with_user(self.manager_a).get_views([(False, "form")])
        form = arch["views"]["form"]["arch"]
        self.assertIn('name="access_token_notice"', form)
        self.assertNotIn('name="access_token"', form.replace('name="access_token_', ""))
        admin_form = self.env["crm.whatsapp.account"].with_user(self.admin).get_views([(False, "form")])
        self.assertNotIn('name="access_token_notice"', admin_form["views"]["form"]["arch"])


@tagged("post_install", "-at_install")
class TestSendRights(TwoCompaniesMixin, TransactionCase):
    """Send, retry: only who may see the lead; marketing templates: their own right."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_two_companies(graph_url=cls.start_fake_graph())
        cls.marketing = cls.env["crm.whatsapp.template"].create({
            "name": "big_sale", "language": "en", "account_id": cls.account.id, "status": "approved",
            "category": "marketing", "body": "Our big sale starts today"})
        cls.utility = cls.env["crm.whatsapp.template"].create({
            "name": "order_ready", "language": "en", "account_id": cls.account.id, "status": "approved",
            "category": "utility", "body": "Your order is ready"})

    def setUp(self):
        super().setUp()
        self.messages_path = f"/{self.account.phone_number_id}/messages"
        self.graph.requests.clear()
        self.graph.respond(self.messages_path, *[
            (200, {"messaging_product": "whatsapp", "messages": [{"id": f"wamid.MC-SENT-{index}"}]})
            for index in range(1, 5)])

    def composer(self, lead, user, **values):
        form = Form(self.env["crm.whatsapp.composer"].with_user(user).with_context(
            active_model="crm.lead", active_id=lead.id))
        for name, value in values.items():
            setattr(form, name, value)
        return form.save()

    def test_marketing_template_needs_its_own_right(self):
        lead = self.customer_writes(self.account.phone_number_id).lead_id
        self.assertEqual(lead.user_id, self.salesperson)
        with self.assertRaises(AccessError):
            self.composer(lead, self.salesperson, template_id=self.marketing).action_send()
        self.assertFalse(self.graph.received(self.messages_path))
        self.composer(lead, self.salesperson, template_id=self.utility).action_send()
        self.send_queued()
        self.assertEqual(len(self.graph.received(self.messages_path)), 1)
        self.assertTrue(self.manager_a.has_group("crm_whatsapp_bridge.group_whatsapp_marketing"))
        self.composer(lead, self.manager_a, template_id=self.marketing).action_send()
        self.send_queued()
        sent = self.graph.received(self.messages_path)
        self.assertEqual(sent[-1]["json"]["template"]["name"], "big_sale")
        # The right can be given to a salesperson.
        self.salesperson.groups_id = [(4, self.env.ref("crm_whatsapp_bridge.group_whatsapp_marketing").id)]
        self.composer(lead, self.salesperson, template_id=self.marketing).action_send()
        self.send_queued()
        self.assertEqual(len(self.graph.received(self.messages_path)), 3)

    def _failed_message_to_contact(self, author):
        partner = self.env["res.partner"].create({"name": "Walk-in", "phone": "+966501110088"})
        Message = self.env["crm.whatsapp.message"]
        Message.create({"wamid": "wamid.MC-IN", "direction": "in", "account_id": self.account.id,
                        "partner_id": partner.id, "wa_id": "966501110088", "body": "hi",
                        "message_date": fields.Datetime.now() - timedelta(hours=1)})
        return Message.create({"direction": "out", "account_id": self.account.id, "partner_id": partner.id,
                               "wa_id": "966501110088", "body": "Your quote", "state": "failed",
                               "user_id": author.id, "error_code": 1})

    def test_only_who_may_see_it_retries_a_message_sent_from_a_contact(self):
        failed = self._failed_message_to_contact(self.other_salesperson)
        with self.assertRaises(AccessError):
            failed.with_user(self.salesperson).action_retry()
        with self.assertRaises(AccessError):
            failed.with_user(self.sales_b).action_retry()
        self.assertFalse(self.graph.received(self.messages_path))
        self.assertEqual(failed.state, "failed")
        failed.with_user(self.other_salesperson).action_retry()
        self.assertEqual(failed.state, "queued")
        self.send_queued()
        self.assertEqual((failed.state, failed.wamid), ("sent", "wamid.MC-SENT-1"))

    def test_retrying_a_marketing_template_needs_the_right(self):
        failed = self._failed_message_to_contact(self.salesperson)
        failed.write({"message_type": "template", "template_id": self.marketing.id})
        with self.assertRaises(AccessError):
            failed.with_user(self.salesperson).action_retry()
        self.assertFalse(self.graph.received(self.messages_path))
        failed.with_user(self.manager_a).action_retry()
        self.assertEqual(failed.state, "queued")

    def test_cannot_send_from_another_company_number(self):
        lead = self.customer_writes(self.account.phone_number_id).lead_id
        with self.assertRaises(AccessError):
            self.env["crm.whatsapp.composer"].with_user(self.salesperson).create({
                "lead_id": lead.id, "partner_id": lead.partner_id.id, "account_id": self.account_b.id,
                "body": "hi"}).action_send()
        self.assertFalse(self.graph.received(f"/{PHONE_NUMBER_ID_B}/messages"))
