import threading
import uuid
from datetime import datetime, timedelta

from odoo.tests import BaseCase, tagged

from ..tools.leadgen import backfill_payload, leadgen_event
from ..tools.payload import split_notification
from .committed import CommittedWhatsappMixin
from .common import notification, text_message
from .fake_graph import lead_object

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

    def test_whatsapp_message_and_lead_ads_form_of_one_new_number_at_once(self):
        sender = f"96650{uuid.uuid4().int % 10**7:07d}"  # a valid mobile number (+966 50), so the form's phone is kept
        page_id = f"76{uuid.uuid4().int % 10**12:012d}"
        with self.registry.cursor() as cr:
            env = self._env(cr)
            page = env["crm.meta.page"].create({"name": "Race page", "page_id": page_id, "access_token": "t"})
            self.addCleanup(self._cleanup_page, page.id, page_id)
            lead = lead_object(f"9{sender}", "1", datetime.now().replace(microsecond=0) - timedelta(hours=1),
                               {"full_name": "Racer", "phone_number": "+" + sender})
            env["crm.inbox.event"]._store_events("meta", [leadgen_event(lead["id"], page_id,
                                                                        backfill_payload(page_id, lead))])
        self._store([text_message(sender, "hello")])
        # Two workers, one event each: the WhatsApp message and the form of the same new number.
        self._run_workers(2, lambda: self._process_one_chunk(limit=1))
        with self.registry.cursor() as cr:
            env = self._env(cr, {"active_test": False})
            partners = env["res.partner"].search([("phone_sanitized", "=", "+" + sender)])
            self.assertEqual(len(partners), 1)
            self.assertEqual(len(env["crm.lead"].search([("partner_id", "=", partners.id)])), 1)
            events = env["crm.inbox.event"].search([("channel_ref", "in", [page_id, self.phone_number_id])])
            self.assertEqual(events.mapped("state"), ["done", "done"])

    def _cleanup_page(self, page_db_id, page_id):
        with self.registry.cursor() as cr:
            env = self._env(cr, {"active_test": False})
            leads = env["crm.lead"].search([("meta_page_id", "=", page_db_id)])
            partners = leads.partner_id
            env["crm.inbox.event"].search([("channel_ref", "=", page_id)]).unlink()
            leads.unlink()
            partners.unlink()
            env["crm.meta.page"].browse(page_db_id).unlink()


@tagged("post_install", "-at_install")
class TestWakeUpWhileDraining(CommittedWhatsappMixin, BaseCase):
    """Webhooks skip the costly cron wake-up while a drain runs; the drain still sees their events."""

    def _triggers(self, env):
        cron = env.ref("crm_whatsapp_bridge.ir_cron_process_inbox")
        return env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])

    def _webhook(self, cr, sender):
        """What the webhook does with one new message, without committing; return triggers added."""
        env = self._env(cr)
        before = self._triggers(env)
        self.assertEqual(self._store_in(env, [text_message(sender, "hi")]), 1)
        queries = cr.sql_log_count
        env["crm.inbox.event"]._trigger_processing()
        self.wake_up_queries = cr.sql_log_count - queries
        return self._triggers(env) - before

    def _store_in(self, env, messages):
        payload = notification(messages, phone_number_id=self.phone_number_id)
        return env["crm.inbox.event"]._store_events("whatsapp", split_notification(payload))

    def test_a_running_drain_waits_for_the_webhooks_that_skipped_the_wake_up(self):
        sender = f"1555{uuid.uuid4().int % 10**7:07d}"
        with self.registry.cursor() as drain_cr, self.registry.cursor() as webhook_cr:
            drain = self._env(drain_cr)["crm.inbox.event"]
            drain._draining(True)
            drain_cr.commit()
            self.assertEqual(self._webhook(webhook_cr, sender), 0, "no wake-up while the drain runs")
            self.assertEqual(self.wake_up_queries, 0, "storing the events told whether a drain runs")
            counted = []
            closing = threading.Thread(target=lambda: counted.append(drain._ready_after_storing()))
            closing.start()
            closing.join(1)
            self.assertTrue(closing.is_alive(), "the drain waits for the webhook still storing")
            webhook_cr.commit()
            closing.join(30)
            self.assertFalse(closing.is_alive())
            self.assertGreaterEqual(counted[0], 1, "the drain counts the event stored meanwhile")
            drain._draining(False)
            drain_cr.commit()
            # No drain running: the next webhook wakes the cron itself.
            self.assertEqual(self._webhook(webhook_cr, sender), 1)
            webhook_cr.commit()
        with self.registry.cursor() as cr:
            self._env(cr)["crm.inbox.event"]._cron_process_inbox()
        with self.registry.cursor() as cr:
            events = self._env(cr)["crm.inbox.event"].search([("channel_ref", "=", self.phone_number_id)])
            self.assertEqual(events.mapped("state"), ["done", "done"])

    def test_the_drain_probe_sees_what_webhooks_store_and_how_long_events_wait(self):
        sender = f"1555{uuid.uuid4().int % 10**7:07d}"
        self.assertEqual(self._store([text_message(sender, "first")]), 1)
        with self.registry.cursor() as cr:
            env = self._env(cr)
            first = env["crm.inbox.event"].search([("channel_ref", "=", self.phone_number_id)])
            cr.execute("UPDATE crm_inbox_event SET create_date = create_date - interval '30 seconds' WHERE id = %s",
                       [first.id])
        with self.registry.cursor() as drain_cr:
            drain = self._env(drain_cr)["crm.inbox.event"]
            newest, waited = drain._burst_probe()
            self.assertGreaterEqual(newest, first.id)
            self.assertGreaterEqual(waited, 29, "the oldest ready event waited at least as long as this one")
            # The probe ends its transaction: the next one sees what a webhook committed meanwhile.
            self.assertEqual(self._store([text_message(sender, "second")]), 1)
            self.assertGreater(drain._burst_probe()[0], newest)
