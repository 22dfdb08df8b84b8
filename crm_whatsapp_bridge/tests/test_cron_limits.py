from datetime import timedelta

from odoo import fields
from odoo.tests import BaseCase, TransactionCase, tagged

from ..tools import cron_budget
from .committed import CommittedWhatsappMixin
from .common import FORM_ID, PAGE_ID, STANDARD_QUESTIONS, MetaTestMixin, text_message
from .fake_graph import lead_object


def run_cron(env, xmlid, method):
    """Call a cron's method as Odoo's cron runner does; return its progress and how many triggers it added."""
    cron = env.ref(xmlid)
    triggers = env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])
    progress = env["ir.cron.progress"].create({"cron_id": cron.id, "remaining": 0, "done": 0})
    method(env[cron.model_id.model].with_context(ir_cron_progress_id=progress.id))
    new_triggers = env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]) - triggers
    return (progress.done, progress.remaining), new_triggers


@tagged("post_install", "-at_install")
class TestInboxCronWithinWorkerLimits(CommittedWhatsappMixin, BaseCase):
    """The inbox cron (which commits per chunk) stops within the poll's budget and asks for more."""

    def run_inbox_cron(self):
        with self.registry.cursor() as cr:
            env = self._env(cr)
            result = run_cron(env, "crm_whatsapp_bridge.ir_cron_process_inbox",
                              lambda model: model._cron_process_inbox())
            events = env["crm.inbox.event"].search([("channel_ref", "=", self.phone_number_id)])
            return result, sorted(events.mapped("state"))

    def test_inbox_call_drains_everything_within_its_budget(self):
        self._store([text_message("15550109876", f"message {i}") for i in range(3)])
        (progress, triggers), states = self.run_inbox_cron()
        self.assertEqual(progress, (3, 0))
        self.assertEqual(triggers, 0, "nothing left: the worker is not woken again")
        self.assertEqual(states, ["done"] * 3)

    def test_inbox_call_in_a_spent_poll_does_one_event_and_asks_for_more(self):
        self._store([text_message("15550109876", f"message {i}") for i in range(3)])
        self.patch(cron_budget, "POLL_REAL_SECONDS", 0)
        (progress, triggers), states = self.run_inbox_cron()
        self.assertEqual(progress, (1, 2))
        self.assertEqual(triggers, 1, "the next poll is woken at once")
        self.assertEqual(states, ["done", "pending", "pending"])


@tagged("post_install", "-at_install")
class TestBackfillCronWithinWorkerLimits(MetaTestMixin, TransactionCase):
    """The Lead Ads back-fill cron stops between pages within the poll's budget and resumes at Meta's cursor."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_meta(graph_url=cls.start_fake_graph())

    def setUp(self):
        super().setUp()
        # The crons commit between chunks and pages: keep everything inside the test's transaction.
        self.patch(self.env.cr, "commit", lambda: None)
        self.graph.requests.clear()

    def test_backfill_stopped_by_the_budget_resumes_at_meta_cursor(self):
        now = fields.Datetime.now()
        self.graph.add_page_forms(PAGE_ID, [{"id": FORM_ID, "name": "Gold plan signup", "status": "ACTIVE",
                                             "questions": STANDARD_QUESTIONS}])
        self.graph.add_form_leads(FORM_ID, [
            lead_object(f"73000000000{i:04d}", FORM_ID, now - timedelta(days=10, minutes=-i),
                        {"full_name": f"Budget {i}", "email": f"budget{i}@example.com"})
            for i in range(7)], page_size=3)
        self.form._queue_backfill(now - timedelta(days=30))
        self.patch(cron_budget, "POLL_REAL_SECONDS", 0)
        runs = []
        for _i in range(3):
            runs.append(run_cron(self.env, "crm_whatsapp_bridge.ir_cron_meta_backfill",
                                 lambda model: model._cron_backfill()))
            if not self.form.backfill_since:
                break
        self.assertEqual(runs, [((1, 1), 1), ((1, 1), 1), ((1, 0), 0)], "one page per spent poll")
        pages = self.graph.received(f"/{FORM_ID}/leads", "GET")
        afters = [page["args"].get("after") for page in pages]
        self.assertEqual(len(afters), 3, "no page read twice")
        self.assertIsNone(afters[0])
        self.assertTrue(afters[1] and afters[2] and afters[1] != afters[2], "later pages start at the saved cursor")
        self.assertFalse(self.form.backfill_after)
        self.assertTrue(self.form.last_backfill_result.startswith("1 read, 1 new"), self.form.last_backfill_result)
        events = self.env["crm.inbox.event"].search([("external_id", "like", "73000000000%")])
        self.assertEqual(len(events), 7)
