from odoo.tests import BaseCase, TransactionCase, tagged

from ..tools import burst_yield, cron_budget
from .committed import CommittedWhatsappMixin
from .common import run_cron, text_message


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
class TestBurstYieldSetting(TransactionCase):
    """The ratio of the drain's pauses during a burst of webhooks, from a system parameter."""

    def _ratio(self, value):
        self.env["ir.config_parameter"].sudo().set_param("crm_whatsapp_bridge.inbox_burst_yield_ratio", value)
        return self.env["crm.inbox.event"]._burst_yield_ratio()

    def test_default_zero_and_a_wrong_value(self):
        self.assertEqual(self._ratio(False), burst_yield.RATIO)
        self.assertEqual(self._ratio("0"), 0.0)
        self.assertEqual(self._ratio("2.5"), 2.5)
        with self.assertLogs("odoo.addons.crm_whatsapp_bridge.models.crm_inbox_event", "WARNING") as logs:
            self.assertEqual(self._ratio("fast"), burst_yield.RATIO)
        self.assertIn("inbox_burst_yield_ratio", logs.output[0])
