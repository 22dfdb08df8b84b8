import threading
import uuid

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, get_db_name, tagged

from ..tools.payload import split_notification
from .common import notification, text_message

WORKERS = 16


@tagged("post_install", "-at_install")
class TestConcurrentWorkers(BaseCase):
    """Several workers on real, separately committed transactions, as in production.

    These tests commit (a rollback cannot show what another connection sees), so
    they create their own uniquely named data and remove it afterwards.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registry = Registry(get_db_name())

    def _env(self, cr, context=None):
        """An environment on ``cr`` that never looks the registry up by name.

        Odoo's test runner holds the registry lock while post-install tests run, and
        ``api.Environment`` takes that lock (through ``Registry(dbname)``) for a cursor
        with no transaction yet: worker threads would wait for it forever.
        """
        cr.transaction = api.Transaction(self.registry)
        return api.Environment(cr, SUPERUSER_ID, context or {})

    def setUp(self):
        super().setUp()
        self.phone_number_id = f"77{uuid.uuid4().int % 10**12:012d}"
        with self.registry.cursor() as cr:
            env = self._env(cr)
            self.account_id = env["crm.whatsapp.account"].create({
                "name": "Concurrency line", "phone_number_id": self.phone_number_id,
                "access_token": "t"}).id
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            env = self._env(cr, {"active_test": False})
            messages = env["crm.whatsapp.message"].search([("account_id", "=", self.account_id)])
            leads = env["crm.lead"].search([("whatsapp_account_id", "=", self.account_id)])
            partners = messages.partner_id | leads.partner_id
            env["crm.inbox.event"].search([("channel_ref", "=", self.phone_number_id)]).unlink()
            messages.unlink()
            leads.unlink()
            partners.unlink()
            env["crm.whatsapp.account"].browse(self.account_id).unlink()

    def _store(self, messages):
        with self.registry.cursor() as cr:
            env = self._env(cr)
            payload = notification(messages, phone_number_id=self.phone_number_id)
            return env["crm.inbox.event"]._store_events("whatsapp", split_notification(payload))

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
