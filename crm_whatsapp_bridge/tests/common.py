import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

from odoo import SUPERUSER_ID, api
from odoo.tests import new_test_user

APP_SECRET = "test-app-secret-0123456789"
VERIFY_TOKEN = "test-verify-token"
PHONE_NUMBER_ID = "100000000000042"  # not a sample id, so a database in use cannot clash
WABA_ID = "102290129340398"


def notification(messages=(), statuses=(), contacts=None, phone_number_id=PHONE_NUMBER_ID):
    """A WhatsApp Cloud API webhook notification, shaped like Meta's."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100000", "phone_number_id": phone_number_id},
    }
    if contacts is None:
        contacts = {m["from"]: f"Customer {m['from'][-4:]}" for m in messages}
    if contacts:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id} for wa_id, name in contacts.items()]
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": value}]}]}


_counter = [0]


def text_message(sender, body, **extra):
    _counter[0] += 1
    message = {
        "from": sender,
        "id": f"wamid.TEST{time.time_ns()}{_counter[0]}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": body},
    }
    message.update(extra)
    return message


def typed_message(sender, message_type, content, **extra):
    message = text_message(sender, "", **extra)
    del message["text"]
    message["type"] = message_type
    if content is not None:
        message[message_type] = content
    return message


def sign(body, secret=APP_SECRET):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload):
    return json.dumps(payload, ensure_ascii=False).encode()


class WhatsappTestMixin:
    """Configuration shared by the addon's tests: Meta app, a number, a team and a salesperson."""

    @classmethod
    def start_fake_graph(cls):
        """Start a local Graph API for the class (``cls.graph``); return its base URL."""
        from .fake_graph import FakeGraphServer
        cls.graph = FakeGraphServer().__enter__()
        cls.addClassCleanup(cls.graph.__exit__, None, None, None)
        return cls.graph.url

    @classmethod
    def setup_whatsapp(cls, graph_url="http://127.0.0.1:9"):
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param("crm_whatsapp_bridge.meta_app_secret", APP_SECRET)
        params.set_param("crm_whatsapp_bridge.meta_verify_token", VERIFY_TOKEN)
        params.set_param("crm_whatsapp_bridge.graph_url", graph_url)
        cls.salesperson = new_test_user(
            cls.env, login="wa_salesperson", name="Sara Salesperson",
            groups="sales_team.group_sale_salesman", notification_type="inbox")
        cls.other_salesperson = new_test_user(
            cls.env, login="wa_other_salesperson", name="Omar Other",
            groups="sales_team.group_sale_salesman", notification_type="inbox")
        cls.admin = new_test_user(
            cls.env, login="wa_admin", name="Adam Admin",
            groups="base.group_system,sales_team.group_sale_manager", notification_type="inbox")
        cls.team = cls.env["crm.team"].create({
            "name": "WhatsApp Team", "member_ids": [(6, 0, [cls.salesperson.id, cls.other_salesperson.id])]})
        cls.account = cls.env["crm.whatsapp.account"].create({
            "name": "Riyadh line",
            "phone_number_id": PHONE_NUMBER_ID,
            "waba_id": WABA_ID,
            "access_token": "EAAG-test-token",
            "team_id": cls.team.id,
            "user_id": cls.salesperson.id,
        })

    def send_queued(self):
        """Run the send cron as Odoo does: in its own cursor, with its own commits.

        In test mode the cursor's commits are savepoints of the test transaction and an
        exception rolls back to the last one, like a killed worker.
        """
        self.env.flush_all()
        entered = self.registry.test_cr is None
        if entered:
            self.registry.enter_test_mode(self.env.cr)
        try:
            with self.registry.cursor() as cr:
                api.Environment(cr, SUPERUSER_ID, {})["crm.whatsapp.message"]._cron_send_outbound()
        finally:
            if entered:
                self.registry.leave_test_mode()
            self.env.invalidate_all()

    def store(self, payload):
        """Put a notification in the inbox the way the webhook does."""
        from odoo.addons.crm_whatsapp_bridge.tools.payload import split_notification
        return self.env["crm.inbox.event"]._store_events("whatsapp", split_notification(payload))

    def process_all(self):
        Inbox = self.env["crm.inbox.event"]
        while Inbox._process_chunk(limit=50):
            pass

    def event_of(self, external_id):
        return self.env["crm.inbox.event"].search([("external_id", "=", external_id)])


class WebhookClientMixin:
    """Signed requests to a webhook route of the running Odoo (``webhook_path``), and what they stored."""

    webhook_path = None

    def _handshake(self, **params):
        return self.url_open(f"{self.webhook_path}?{urlencode(params)}")

    def _post(self, body, signature="sign"):
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            signature = sign(body)
        if signature:
            headers["X-Hub-Signature-256"] = signature
        return self.url_open(self.webhook_path, data=body, headers=headers)

    def _inbox(self):
        return self.env["crm.inbox.event"].search([])

    def _triggers(self):
        cron = self.env.ref("crm_whatsapp_bridge.ir_cron_process_inbox")
        return self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])


def api_keys(env, *users):
    """A fresh Odoo API key for each user, as its owner would create it in Preferences."""
    return {user: env["res.users.apikeys"].with_user(user).sudo()._generate(None, "test", False) for user in users}


def bus_payloads(env, user, notification_type):
    """Payloads of the bus notifications of one type sent to ``user`` (written at commit)."""
    env.cr.precommit.run()
    channel = f'"res.partner",{user.partner_id.id}]'
    messages = [json.loads(b.message) for b in env["bus.bus"].sudo().search([("channel", "like", channel)])]
    return [m["payload"] for m in messages if m["type"] == notification_type]


PAGE_ID = "100000000000077"  # not the sample's page id, so a database in use cannot clash
FORM_ID = "900000000000011"
STANDARD_QUESTIONS = [
    {"key": "full_name", "label": "Full name", "type": "FULL_NAME", "id": "q1"},
    {"key": "email", "label": "Email", "type": "EMAIL", "id": "q2"},
    {"key": "phone_number", "label": "Phone number", "type": "PHONE", "id": "q3"},
    {"key": "city", "label": "City", "type": "CITY", "id": "q4"},
    {"key": "company_name", "label": "Company name", "type": "COMPANY_NAME", "id": "q5"},
    {"key": "how_many_users?", "label": "How many users?", "type": "CUSTOM", "id": "q6"},
]


def leadgen_notification(*leadgen_ids, page_id=PAGE_ID, form_id=FORM_ID):
    """A Page webhook notification with one ``leadgen`` change per id, shaped like Meta's."""
    return {"object": "page", "entry": [{"id": page_id, "time": int(time.time()), "changes": [
        {"field": "leadgen", "value": {
            "leadgen_id": leadgen_id, "page_id": page_id, "form_id": form_id,
            "adgroup_id": "120210000000000002", "ad_id": "120210000000000002",
            "created_time": int(time.time())}}
        for leadgen_id in leadgen_ids]}]}


class MetaTestMixin(WhatsappTestMixin):
    """A connected Facebook page with one synced lead form, on top of the WhatsApp setup."""

    @classmethod
    def setup_meta(cls, graph_url="http://127.0.0.1:9"):
        cls.setup_whatsapp(graph_url=graph_url)
        cls.page = cls.env["crm.meta.page"].create({
            "name": "Amin Trading", "page_id": PAGE_ID, "access_token": "EAAP-page-token",
            "team_id": cls.team.id, "user_id": cls.salesperson.id})
        cls.form = cls.env["crm.meta.form"].create({
            "name": "Gold plan signup", "form_id": FORM_ID, "page_id": cls.page.id,
            "questions": STANDARD_QUESTIONS})
        cls.form._ensure_mapping_lines()

    def store_leadgen(self, *leadgen_ids, **kwargs):
        from odoo.addons.crm_whatsapp_bridge.tools.leadgen import split_leadgen_notification
        return self.env["crm.inbox.event"]._store_events(
            "meta", split_leadgen_notification(leadgen_notification(*leadgen_ids, **kwargs)))


def run_cron(env, xmlid, method):
    """Call a cron's method as Odoo's cron runner does; return its progress and how many triggers it added."""
    cron = env.ref(xmlid)
    triggers = env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])
    progress = env["ir.cron.progress"].create({"cron_id": cron.id, "remaining": 0, "done": 0})
    method(env[cron.model_id.model].with_context(ir_cron_progress_id=progress.id))
    new_triggers = env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]) - triggers
    return (progress.done, progress.remaining), new_triggers
def read_own_transaction_as_committed(test):
    """Let GET /crm/leads and the BigQuery export read what this test wrote.

    They read in commit order and stop before the oldest transaction still running, which in a
    test that runs in one transaction is the test's own: from here on they count it as committed.
    Tests across real transactions (test_bigquery_export.TestAcrossTransactions) do not use this.
    """
    test.env.cr.execute("SELECT pg_current_xact_id()::text::bigint + 1")
    horizon = test.env.cr.fetchone()[0]
    test.patch(type(test.env["crm.lead"]), "_commit_horizon", lambda _leads: horizon)
