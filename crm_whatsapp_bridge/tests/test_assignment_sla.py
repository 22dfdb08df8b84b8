import threading
import time
import uuid
from contextlib import closing
from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.sql_db import db_connect
from odoo.tests import BaseCase, TransactionCase, get_db_name, new_test_user, tagged
from odoo.tools import SQL

from ..models.crm_lead_api import lead_rows_sql
from ..models.crm_team import take_round_robin_turn
from ..tools.bigquery_tables import CRM_LEADS
from .common import PHONE_NUMBER_ID, WhatsappTestMixin, bus_payloads, notification, text_message
from .fake_graph import FakeGraphServer

MESSAGES_PATH = f"/{PHONE_NUMBER_ID}/messages"
SEND_OK = {"messaging_product": "whatsapp", "messages": [{"id": "wamid.AUTO-1"}]}
WEDNESDAY_10 = datetime(2031, 1, 8, 10, 0)  # a working day
SATURDAY_10 = datetime(2031, 1, 11, 10, 0)  # nobody's working day
MONDAY_08_05 = datetime(2031, 1, 13, 8, 5)


def calendar(env, name, hour_from, hour_to):
    """Monday to Friday, ``hour_from`` to ``hour_to`` UTC."""
    return env["resource.calendar"].create({
        "name": name, "tz": "UTC",
        "attendance_ids": [(5, 0, 0)] + [
            (0, 0, {"name": f"{name} {day}", "dayofweek": str(day), "hour_from": hour_from, "hour_to": hour_to,
                    "day_period": "morning"}) for day in range(5)],
    })


class SharedInboxMixin(WhatsappTestMixin):
    """A team of three: Amal works days, Badr works nights, Chadi works days but is away."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_shared_inbox()

    def setUp(self):
        super().setUp()
        self.graph.requests.clear()
        self.graph.respond(MESSAGES_PATH, (200, SEND_OK))

    @classmethod
    def setup_shared_inbox(cls):
        cls.graph = FakeGraphServer().__enter__()
        cls.addClassCleanup(cls.graph.__exit__, None, None, None)
        cls.setup_whatsapp(graph_url=cls.graph.url)
        day, night = calendar(cls.env, "Day shift", 8, 17), calendar(cls.env, "Night shift", 20, 23.99)
        cls.amal, cls.badr, cls.chadi = (
            new_test_user(cls.env, login=login, name=name, groups="sales_team.group_sale_salesman",
                          notification_type="inbox")
            for login, name in (("amal", "Amal Day"), ("badr", "Badr Night"), ("chadi", "Chadi Away")))
        for user, shift in ((cls.amal, day), (cls.badr, night), (cls.chadi, day)):
            cls.env["resource.resource"].create({"name": user.name, "user_id": user.id, "calendar_id": shift.id,
                                                 "tz": "UTC"})
        cls.chadi.whatsapp_available = False
        cls.leader = new_test_user(cls.env, login="leila", name="Leila Leader",
                                   groups="sales_team.group_sale_manager", notification_type="inbox")
        cls.inbox_team = cls.env["crm.team"].create({
            "name": "Shared inbox", "user_id": cls.leader.id, "whatsapp_sla_minutes": 15,
            "whatsapp_escalation_minutes": 30,
            "member_ids": [(6, 0, [cls.amal.id, cls.badr.id, cls.chadi.id])]})
        cls.account.write({"team_id": cls.inbox_team.id, "user_id": False, "assignment_rule": "round_robin"})

    def customer_writes(self, sender, body="Hello, is this available?"):
        message = text_message(sender, body)
        self.store(notification([message]))
        self.process_all()
        event = self.event_of(message["id"])
        self.assertEqual(event.state, "done", event.last_error)
        return self.env["crm.whatsapp.message"].search([("wamid", "=", message["id"])])

    def lead_of(self, sender):
        return self.customer_writes(sender).lead_id

    def reply(self, lead, body="Yes, it is."):
        """A reply from Odoo, as the composer records it."""
        return self.env["crm.whatsapp.message"].with_user(lead.user_id or self.amal)._queue_outbound(
            lead, self.account, lead.partner_id, {"message_type": "text", "body": body})

    def chatter_texts(self, lead):
        return [str(message.body) for message in lead.message_ids]


@tagged("post_install", "-at_install")
class TestAssignment(SharedInboxMixin, TransactionCase):

    @freeze_time(WEDNESDAY_10)
    def test_round_robin_skips_the_member_off_shift_and_the_unavailable_one(self):
        leads = [self.lead_of(f"1555020000{i}") for i in range(3)]
        self.assertEqual([lead.user_id for lead in leads], [self.amal] * 3)
        self.assertEqual(leads[0].team_id, self.inbox_team)
        self.assertTrue(any("Assigned to Amal Day" in text and "Round robin" in text
                            for text in self.chatter_texts(leads[0])), self.chatter_texts(leads[0]))
        # Chadi switches back on: the turns alternate between the two members on shift.
        self.env["res.users"].with_user(self.chadi).action_whatsapp_set_available(True)
        self.assertTrue(self.chadi.whatsapp_available)
        more = [self.lead_of(f"1555020001{i}").user_id for i in range(4)]
        self.assertEqual(sorted(more.count(user) for user in (self.amal, self.chadi)), [2, 2])
        self.assertNotIn(self.badr, more)
        self.assertEqual(more[0:2], more[2:4])

    @freeze_time(datetime(2031, 1, 8, 21, 0))
    def test_at_night_only_the_night_shift_gets_leads(self):
        self.assertEqual(self.lead_of("15550200020").user_id, self.badr)

    @freeze_time(WEDNESDAY_10)
    def test_fewest_open_whatsapp_leads(self):
        self.account.assignment_rule = "least_open"
        self.chadi.whatsapp_available = True
        first = self.lead_of("15550200030")
        second = self.lead_of("15550200031")
        self.assertEqual({first.user_id, second.user_id}, {self.amal, self.chadi})
        # A won lead is not open: its salesperson counts one lead less.
        first.action_set_won()
        self.assertEqual(self.lead_of("15550200032").user_id, first.user_id)

    def test_nobody_working_the_lead_waits_then_goes_to_the_first_who_starts(self):
        with freeze_time(SATURDAY_10):
            lead = self.lead_of("15550200040")
            self.assertFalse(lead.user_id)
            self.assertEqual(lead.team_id, self.inbox_team)
            self.assertTrue(lead.whatsapp_assign_pending)
            self.assertTrue(any("waits for the first member" in text for text in self.chatter_texts(lead)))
            self.env["crm.lead"]._cron_whatsapp_assign_waiting()
            self.assertFalse(lead.user_id)
        with freeze_time(MONDAY_08_05):
            self.env["crm.lead"]._cron_whatsapp_assign_waiting()
        self.assertEqual(lead.user_id, self.amal)
        self.assertFalse(lead.whatsapp_assign_pending)

    def test_a_lead_taken_by_hand_leaves_the_waiting_list(self):
        with freeze_time(SATURDAY_10):
            lead = self.lead_of("15550200050")
            lead.user_id = self.badr
        with freeze_time(MONDAY_08_05):
            self.env["crm.lead"]._cron_whatsapp_assign_waiting()
        self.assertEqual(lead.user_id, self.badr)
        self.assertFalse(lead.whatsapp_assign_pending)

    @freeze_time(SATURDAY_10)
    def test_fixed_rule_ignores_working_hours_and_logs(self):
        self.account.write({"assignment_rule": "fixed", "user_id": self.chadi.id})
        lead = self.lead_of("15550200060")
        self.assertEqual(lead.user_id, self.chadi)
        self.assertTrue(any("Assigned to Chadi Away" in text for text in self.chatter_texts(lead)))

    @freeze_time(WEDNESDAY_10)
    def test_lead_ads_page_uses_its_own_rule(self):
        page = self.env["crm.meta.page"].create({
            "name": "Page", "page_id": "100000000000099", "team_id": self.inbox_team.id,
            "assignment_rule": "round_robin"})
        lead = self.env["crm.lead"].create({"name": "Form lead", "meta_page_id": page.id})
        lead._whatsapp_assign(page)
        self.assertEqual(lead.user_id, self.amal)


@tagged("post_install", "-at_install")
class TestFirstResponse(SharedInboxMixin, TransactionCase):

    def setUp(self):
        super().setUp()
        self.cron = self.env["crm.whatsapp.conversation"]

    def test_clock_starts_runs_in_working_time_and_stops_with_the_reply(self):
        with freeze_time(WEDNESDAY_10):
            lead = self.lead_of("15550200100")
        conversation = lead.whatsapp_conversation_id
        self.assertEqual((conversation.started_at, conversation.deadline, conversation.sla_state),
                         (WEDNESDAY_10, WEDNESDAY_10 + timedelta(minutes=15), "running"))
        self.assertEqual((lead.whatsapp_waiting_since, lead.whatsapp_sla_deadline),
                         (WEDNESDAY_10, WEDNESDAY_10 + timedelta(minutes=15)))
        self.assertIn(lead, self.env["crm.lead"].search([("whatsapp_waiting_since", "!=", False)]))
        with freeze_time(WEDNESDAY_10 + timedelta(minutes=5)):
            self.customer_writes("15550200100", "Anyone there?")  # same conversation: same clock
            self.assertEqual(lead.whatsapp_conversation_id, conversation)
            self.reply(lead)
        self.assertEqual((conversation.sla_state, conversation.response_seconds, conversation.user_id),
                         ("met", 300.0, self.amal))
        self.assertFalse(lead.whatsapp_waiting_since)
        self.assertFalse(lead.whatsapp_sla_deadline)
        with freeze_time(WEDNESDAY_10 + timedelta(minutes=6)):
            self.reply(lead, "Anything else?")  # later replies change nothing
        self.assertEqual(conversation.response_seconds, 300.0)
        with freeze_time(WEDNESDAY_10 + timedelta(hours=30)):
            self.customer_writes("15550200100", "Back again")
        self.assertNotEqual(lead.whatsapp_conversation_id, conversation)
        self.assertEqual(len(lead.whatsapp_conversation_ids), 2)

    @freeze_time(WEDNESDAY_10)
    def test_a_burst_in_one_second_opens_one_conversation(self):
        # WhatsApp dates messages to the second: a burst shares one timestamp, in one chunk.
        first, second = text_message("15550200105", "Hi"), text_message("15550200105", "Is it in stock?")
        self.store(notification([first, second]))
        self.process_all()
        messages = self.env["crm.whatsapp.message"].search([("wamid", "in", [first["id"], second["id"]])])
        lead = messages.lead_id
        self.assertEqual(len(lead), 1)
        self.assertEqual(len(lead.whatsapp_conversation_ids), 1)
        self.assertEqual(lead.whatsapp_conversation_id.opening_message_id, messages.sorted("id")[0])
        self.assertEqual((lead.whatsapp_waiting_since, lead.whatsapp_sla_deadline),
                         (WEDNESDAY_10, WEDNESDAY_10 + timedelta(minutes=15)))

    def test_deadline_counts_working_time_only(self):
        with freeze_time(datetime(2031, 1, 8, 16, 55)):
            lead = self.lead_of("15550200110")
        # Five minutes on Wednesday, ten on Thursday morning.
        self.assertEqual(lead.whatsapp_sla_deadline, datetime(2031, 1, 9, 8, 10))

    def test_missed_target_activity_then_escalation_each_once(self):
        with freeze_time(WEDNESDAY_10):
            lead = self.lead_of("15550200120")
        conversation = lead.whatsapp_conversation_id
        with freeze_time(WEDNESDAY_10 + timedelta(minutes=14)):
            self.cron._cron_check_deadlines()
        self.assertFalse(conversation.breached_at)
        self.assertFalse(lead.activity_ids)
        with freeze_time(WEDNESDAY_10 + timedelta(minutes=16)):
            self.cron._cron_check_deadlines()
            self.cron._cron_check_deadlines()
        self.assertEqual(conversation.sla_state, "missed")
        self.assertEqual(len(lead.activity_ids), 1)
        self.assertEqual(lead.activity_ids.user_id, self.amal)
        self.assertIn("first response target missed", lead.activity_ids.summary)
        leader_posts = lambda: lead.message_ids.filtered(  # noqa: E731
            lambda m: self.leader.partner_id in m.partner_ids)
        with freeze_time(WEDNESDAY_10 + timedelta(minutes=40)):
            self.cron._cron_check_deadlines()
        self.assertFalse(leader_posts(), "escalation waits 30 minutes after the miss")
        with freeze_time(WEDNESDAY_10 + timedelta(minutes=47)):
            self.cron._cron_check_deadlines()
            self.cron._cron_check_deadlines()
        self.assertEqual(len(leader_posts()), 1)
        self.assertIn("has waited since 10:00", str(leader_posts().body))
        self.assertTrue(conversation.escalated_at)
        self.assertEqual([p["lead_id"] for p in bus_payloads(self.env, self.leader, "crm_whatsapp_bridge/new_message")],
                         [lead.id])
        with freeze_time(WEDNESDAY_10 + timedelta(minutes=50)):
            self.reply(lead)
        self.assertEqual((conversation.sla_state, conversation.response_seconds), ("missed", 3000.0))
        self.assertFalse(lead.activity_ids, "the reminder is done once the customer got a reply")
        self.assertTrue(any("Replied on WhatsApp." in text for text in self.chatter_texts(lead)))

    def test_no_reminder_for_a_lead_lost_meanwhile(self):
        with freeze_time(WEDNESDAY_10):
            lead = self.lead_of("15550200125")
            lead.action_set_lost()
        with freeze_time(WEDNESDAY_10 + timedelta(hours=2)):
            self.cron._cron_check_deadlines()
        self.assertFalse(lead.whatsapp_conversation_id.breached_at)
        self.assertFalse(lead.with_context(active_test=False).activity_ids)

    def test_reply_before_the_deadline_leaves_nothing_for_the_cron(self):
        with freeze_time(WEDNESDAY_10):
            lead = self.lead_of("15550200130")
            self.reply(lead)
        with freeze_time(WEDNESDAY_10 + timedelta(hours=2)):
            self.cron._cron_check_deadlines()
        self.assertEqual(lead.whatsapp_conversation_id.sla_state, "met")
        self.assertFalse(lead.activity_ids)

    def test_away_message_outside_hours_once_per_conversation(self):
        self.account.write({"welcome_message": "Welcome! A salesperson answers in minutes.",
                            "away_message": "We are closed now and answer on Monday."})
        with freeze_time(SATURDAY_10):
            first = self.customer_writes("15550200140", "Hello?")
            self.customer_writes("15550200140", "Hello again?")
        lead = first.lead_id
        self.send_queued()
        sent = self.graph.received(MESSAGES_PATH)
        self.assertEqual(len(sent), 1)
        self.assertEqual(sent[0]["json"]["text"]["body"], "We are closed now and answer on Monday.")
        automatic = lead.whatsapp_message_ids.filtered("is_automatic")
        self.assertEqual((len(automatic), automatic.direction), (1, "out"))
        self.assertIn("Automatic", str(automatic.mail_message_id.body))
        self.assertEqual(lead.whatsapp_conversation_id.auto_reply_message_id, automatic)
        # An automatic reply is no answer from a person: the clock still runs.
        self.assertEqual(lead.whatsapp_conversation_id.sla_state, "running")
        self.assertTrue(lead.whatsapp_waiting_since)

    def test_welcome_message_in_hours_and_never_to_a_blacklisted_number(self):
        self.account.write({"welcome_message": "Welcome!", "away_message": "Closed."})
        with freeze_time(WEDNESDAY_10):
            self.customer_writes("966501234567")
            self.env["phone.blacklist"].sudo().add("+966501234568")
            self.customer_writes("966501234568")
        self.send_queued()
        sent = self.graph.received(MESSAGES_PATH)
        self.assertEqual([request["json"]["to"] for request in sent], ["966501234567"])
        self.assertEqual(sent[0]["json"]["text"]["body"], "Welcome!")

    def test_report_counts_and_percentiles_per_salesperson(self):
        minutes = [1, 2, 3, 4, 30]
        for index, delay in enumerate(minutes):
            with freeze_time(WEDNESDAY_10 + timedelta(hours=index)):
                lead = self.lead_of(f"1555020016{index}")
            with freeze_time(WEDNESDAY_10 + timedelta(hours=index, minutes=delay)):
                self.reply(lead)
        [(user, met, missed, median, p90)] = self.env["crm.whatsapp.conversation"]._read_group(
            [("team_id", "=", self.inbox_team.id)], ["user_id"],
            ["sla_met_count:sum", "sla_missed_count:sum", "response_median_minutes:avg",
             "response_p90_minutes:avg"])
        self.assertEqual((user, met, missed), (self.amal, 4, 1))
        self.assertAlmostEqual(median, 3.0)
        self.assertAlmostEqual(p90, 4 + 0.6 * 26)  # linear interpolation between 4 and 30

        stats = self.env["crm.lead"]._api_stats({
            "date_from": "2031-01-08T00:00:00Z", "date_to": "2031-01-09T00:00:00Z",
            "team_id": str(self.inbox_team.id)})["whatsapp_sla"]
        self.assertEqual((stats["conversations"], stats["met"], stats["missed"], stats["waiting"]), (5, 4, 1, 0))
        self.assertEqual((stats["median_first_response_seconds"], stats["p90_first_response_seconds"]),
                         (180.0, 1176.0))
        self.assertEqual(stats["by_salesperson"], [{
            "salesperson": {"id": self.amal.id, "name": "Amal Day"}, "conversations": 5, "met": 4, "missed": 1,
            "median_first_response_seconds": 180.0, "p90_first_response_seconds": 1176.0}])
        self.assertEqual(stats["by_team"][0]["team"], {"id": self.inbox_team.id, "name": "Shared inbox"})
        empty = self.env["crm.lead"]._api_stats({"date_from": "2030-01-01T00:00:00Z",
                                                 "date_to": "2030-01-02T00:00:00Z"})["whatsapp_sla"]
        self.assertEqual((empty["conversations"], empty["median_first_response_seconds"], empty["by_team"]),
                         (0, None, []))

    def test_bigquery_lead_rows_carry_the_first_response(self):
        with freeze_time(WEDNESDAY_10):
            lead = self.lead_of("15550200170")
        with freeze_time(WEDNESDAY_10 + timedelta(minutes=4)):
            self.reply(lead)
        self.env.flush_all()
        [row] = self.env.execute_query_dict(SQL("%s WHERE l.id = %s", lead_rows_sql("en_US"), lead.id))
        # Every column but the run's own time, which the export adds when it loads the rows.
        self.assertLessEqual({field["name"] for field in CRM_LEADS} - {"exported_at"}, set(row))
        self.assertEqual((row["whatsapp_sla_state"], row["whatsapp_first_response_seconds"],
                          row["whatsapp_reply_due_at"]), ("met", 240.0, WEDNESDAY_10 + timedelta(minutes=15)))


@tagged("post_install", "-at_install")
class TestRoundRobinAcrossWorkers(BaseCase):
    """Leads arriving at once under round robin, on separate connections that really commit.

    The worker threads use plain database cursors (no registry, no environment): what runs
    in them is the rotation step of the addon, ``take_round_robin_turn``, as each worker
    runs it inside its own transaction.
    """

    WORKERS = 6

    def setUp(self):
        super().setUp()
        self.registry = Registry(get_db_name())
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            self.user_ids = env["res.users"].with_context(active_test=False).search([], order="id", limit=3).ids
            self.team_id = env["crm.team"].create({"name": f"Round robin {uuid.uuid4().hex[:8]}"}).id
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            api.Environment(cr, SUPERUSER_ID, {})["crm.team"].browse(self.team_id).unlink()

    def _worker(self, barrier, picks, errors):
        try:
            with closing(db_connect(get_db_name()).cursor()) as cr:
                cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                cr.execute("SET LOCAL lock_timeout = '20s'")
                barrier.wait(timeout=30)
                picks.append(take_round_robin_turn(cr, self.team_id, self.user_ids))
                # Hold the team's row a moment, as a worker still creating its lead does.
                time.sleep(0.05)
                cr.commit()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def test_simultaneous_arrivals_go_to_different_members_in_turn(self):
        barrier = threading.Barrier(self.WORKERS)
        picks, errors = [], []
        threads = [threading.Thread(target=self._worker, args=(barrier, picks, errors))
                   for _i in range(self.WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertFalse(errors, errors)
        self.assertFalse(any(thread.is_alive() for thread in threads))
        # Six leads, three members: two each, and never the same member twice in a row.
        self.assertEqual(sorted(picks.count(user_id) for user_id in self.user_ids), [2, 2, 2])
        self.assertTrue(all(a != b for a, b in zip(picks, picks[1:], strict=False)), picks)
        with closing(db_connect(get_db_name()).cursor()) as cr:
            cr.execute("SELECT whatsapp_last_assigned_user_id FROM crm_team WHERE id = %s", [self.team_id])
            self.assertEqual(cr.fetchone()[0], picks[-1], "the rotation is kept in the database")
