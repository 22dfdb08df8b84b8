import threading
import uuid

from odoo.tests import BaseCase, tagged

from .committed import CommittedWhatsappMixin
from .common import text_message

WORKERS = 16


@tagged("post_install", "-at_install")
class TestConcurrentWorkers(CommittedWhatsappMixin, BaseCase):
    """Several workers on real, separately committed transactions, as in production."""

    def _run_workers(self, count, target):
        barrier = threading.Barrier(count)
        errors = []

        def work():
            try:
                barrier.wait(timeout=30)
                target()
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        self.assertFalse(errors, errors)

    def _process_one_chunk(self, limit):
        with self.registry.cursor() as cr:
            env = self._env(cr)
            env["crm.inbox.event"]._process_chunk(limit=limit, read_committed=True)

    def _customer_outcome(self, e164):
        with self.registry.cursor() as cr:
            env = self._env(cr, {"active_test": False})
            partners = env["res.partner"].search([("whatsapp_number", "=", e164)])
            leads = env["crm.lead"].search([("partner_id", "in", partners.ids)])
            events = env["crm.inbox.event"].search([("channel_ref", "=", self.phone_number_id)])
            return (len(partners), len(leads), len(leads.whatsapp_message_ids),
                    sorted(set(events.mapped("state"))))

    def test_sixteen_first_messages_from_one_new_number(self):
        sender = f"1555{uuid.uuid4().int % 10**7:07d}"
        self.assertEqual(self._store([text_message(sender, f"message {i}") for i in range(WORKERS)]), WORKERS)
        # Each worker claims one event: all sixteen race for the same new customer.
        self._run_workers(WORKERS, lambda: self._process_one_chunk(limit=1))
        self.assertEqual(self._customer_outcome("+" + sender), (1, 1, WORKERS, ["done"]))

    def test_two_workers_with_chunks_share_the_work(self):
        senders = [f"1555{uuid.uuid4().int % 10**7:07d}" for _i in range(5)]
        messages = [text_message(senders[i % 5], f"m{i}") for i in range(40)]
        self._store(messages)
        self._run_workers(2, lambda: self._process_one_chunk(limit=10) or self._process_one_chunk(limit=10))
        # Whatever is left (if one worker found nothing to claim), the cron entry point drains.
        with self.registry.cursor() as cr:
            self._env(cr)["crm.inbox.event"]._cron_process_inbox()
        for sender in senders:
            self.assertEqual(self._customer_outcome("+" + sender)[:3], (1, 1, 8), sender)
        self.assertEqual(self._customer_outcome("+" + senders[0])[3], ["done"])
