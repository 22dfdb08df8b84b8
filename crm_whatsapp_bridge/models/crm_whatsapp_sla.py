from datetime import timedelta
from itertools import groupby

from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.tools import SQL

from ..tools.api_params import parse_datetime
from .crm_lead_analytics import CONVERSATION_WINDOW
from .res_users import works_at

DEFAULT_SLA_MINUTES = 15
SLA_CRON_XMLID = "crm_whatsapp_bridge.ir_cron_whatsapp_sla"
REPORT_PERCENTILES = {"response_median_minutes": 0.5, "response_p90_minutes": 0.9}
REPORT_STATE_COUNTS = {"sla_met_count": "met", "sla_missed_count": "missed"}
# Nobody is reminded about a lead that is lost (archived) or won meanwhile.
OPEN_LEAD = SQL("""EXISTS (SELECT 1 FROM crm_lead l LEFT JOIN crm_stage s ON s.id = l.stage_id
                            WHERE l.id = c.lead_id AND l.active AND NOT COALESCE(s.is_won, FALSE))""")


class CrmWhatsappConversation(models.Model):
    """One WhatsApp conversation of a lead: its first-response clock and its automatic reply.

    A conversation opens with a customer message after 24 hours of silence (or the
    first one on the lead). Its clock runs until the first reply sent from Odoo.
    """

    _name = "crm.whatsapp.conversation"
    _description = "WhatsApp Conversation"
    _order = "started_at desc, id desc"
    _rec_name = "lead_id"

    lead_id = fields.Many2one("crm.lead", "Lead", required=True, readonly=True, index=True, ondelete="cascade")
    account_id = fields.Many2one("crm.whatsapp.account", "WhatsApp Number", readonly=True, ondelete="set null")
    opening_message_id = fields.Many2one("crm.whatsapp.message", "First Message", readonly=True,
                                         ondelete="set null", index="btree_not_null")
    team_id = fields.Many2one("crm.team", "Sales Team", readonly=True, index=True, ondelete="set null")
    user_id = fields.Many2one("res.users", "Salesperson", readonly=True, index=True, ondelete="set null")
    company_id = fields.Many2one("res.company", readonly=True, index=True)
    started_at = fields.Datetime("Customer Wrote On", required=True, readonly=True)
    deadline = fields.Datetime("Reply Due", readonly=True,
                               help="The first response target, counted in working hours.")
    replied_at = fields.Datetime("First Reply On", readonly=True)
    response_seconds = fields.Float("First Response (seconds)", readonly=True, aggregator="avg")
    response_minutes = fields.Float("First Response (minutes)", readonly=True, aggregator="avg")
    sla_state = fields.Selection(
        [("none", "No Target"), ("running", "Waiting for Reply"), ("met", "Target Met"), ("missed", "Target Missed")],
        "First Response", default="none", required=True, readonly=True, index=True)
    breached_at = fields.Datetime("Target Missed On", readonly=True)
    escalated_at = fields.Datetime("Escalated On", readonly=True)
    # Indexed for the ondelete: activities are deleted when they are done.
    activity_id = fields.Many2one("mail.activity", readonly=True, ondelete="set null", index="btree_not_null")
    auto_reply_message_id = fields.Many2one("crm.whatsapp.message", "Automatic Reply", readonly=True,
                                            ondelete="set null", index="btree_not_null")

    # Report measures computed by the database for each group (see _read_group_select).
    sla_met_count = fields.Integer("Target Met", compute="_compute_report_measures", aggregator="sum")
    sla_missed_count = fields.Integer("Target Missed", compute="_compute_report_measures", aggregator="sum")
    response_median_minutes = fields.Float("Median First Response (minutes)",
                                           compute="_compute_report_measures", aggregator="avg")
    response_p90_minutes = fields.Float("90th Percentile First Response (minutes)",
                                        compute="_compute_report_measures", aggregator="avg")

    def _compute_report_measures(self):
        for conversation in self:
            conversation.sla_met_count = int(conversation.sla_state == "met")
            conversation.sla_missed_count = int(conversation.sla_state == "missed")
            conversation.response_median_minutes = conversation.response_p90_minutes = conversation.response_minutes

    def _read_group_select(self, aggregate_spec, query):
        """Met/missed counts and first-response percentiles per group, for the pivot and the API."""
        fname = aggregate_spec.split(":")[0]
        if fname in REPORT_PERCENTILES:
            minutes = self._field_to_sql(self._table, "response_minutes", query)
            return SQL("percentile_cont(%s) WITHIN GROUP (ORDER BY %s)", REPORT_PERCENTILES[fname], minutes)
        if fname in REPORT_STATE_COUNTS:
            state = self._field_to_sql(self._table, "sla_state", query)
            return SQL("COUNT(*) FILTER (WHERE %s = %s)", state, REPORT_STATE_COUNTS[fname])
        return super()._read_group_select(aggregate_spec, query)

    def _stop_clock(self, reply):
        """The first reply of the conversation: record the response time and settle the target."""
        for conversation in self.filtered(lambda c: not c.replied_at):
            seconds = max((reply.message_date - conversation.started_at).total_seconds(), 0.0)
            state = conversation.sla_state
            if state == "running":
                state = "met" if reply.message_date <= conversation.deadline else "missed"
            conversation.write({
                "replied_at": reply.message_date,
                "response_seconds": seconds,
                "response_minutes": seconds / 60,
                "sla_state": state,
                "user_id": conversation.lead_id.user_id.id or reply.user_id.id or conversation.user_id.id,
            })
            if conversation.activity_id:
                # sudo: the reply may come from a colleague; the reminder is done either way.
                conversation.activity_id.sudo().action_feedback(_("Replied on WhatsApp."))

    @api.model
    def _claim(self, query):
        self.env.flush_all()
        self.env.cr.execute(query)
        return self.browse(row[0] for row in self.env.cr.fetchall())

    @api.model
    def _cron_check_deadlines(self):
        """Missed targets get an activity for the salesperson; late ones an escalation. Never twice.

        Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and stamped in the same transaction,
        so two runs (or workers) cannot act on the same conversation.
        """
        now = fields.Datetime.now()
        breached = self._claim(SQL(
            """SELECT c.id FROM crm_whatsapp_conversation c
                WHERE c.sla_state = 'running' AND c.breached_at IS NULL AND c.deadline <= %s AND %s
                ORDER BY c.deadline FOR UPDATE OF c SKIP LOCKED""", now, OPEN_LEAD))
        for conversation in breached:
            conversation._breach(now)
        escalate = self._claim(SQL(
            """SELECT c.id FROM crm_whatsapp_conversation c
                 JOIN crm_team t ON t.id = c.team_id
                WHERE c.breached_at IS NOT NULL AND c.escalated_at IS NULL AND c.replied_at IS NULL
                  AND c.breached_at + make_interval(mins => COALESCE(t.whatsapp_escalation_minutes, 0)) <= %s AND %s
                ORDER BY c.breached_at FOR UPDATE OF c SKIP LOCKED""", now, OPEN_LEAD))
        for conversation in escalate:
            conversation._escalate(now)

    def _breach(self, now):
        self.ensure_one()
        lead = self.lead_id
        owner = lead.user_id or self.team_id.user_id
        values = {"breached_at": now, "sla_state": "missed"}
        if owner:
            values["activity_id"] = lead.activity_schedule(
                "mail.mail_activity_data_todo", date_deadline=fields.Date.context_today(lead),
                summary=_("Reply on WhatsApp: first response target missed"),
                note=_("The customer has been waiting since %s.", self._format_time(self.started_at, owner)),
                user_id=owner.id).id
        self.write(values)
        if self.team_id.whatsapp_escalation_minutes and self.team_id.user_id:
            self.env.ref(SLA_CRON_XMLID)._trigger(now + timedelta(minutes=self.team_id.whatsapp_escalation_minutes))

    def _escalate(self, now):
        self.ensure_one()
        self.escalated_at = now
        leader = self.team_id.user_id
        if not leader:
            return
        lead = self.lead_id
        lead.message_post(
            body=Markup("<p>%s</p>") % _(
                "%(customer)s has waited since %(since)s for a first WhatsApp reply (salesperson: %(user)s).",
                customer=lead.partner_id.display_name or lead.name,
                since=self._format_time(self.started_at, leader),
                user=lead.user_id.name or _("nobody")),
            partner_ids=leader.partner_id.ids, subtype_xmlid="mail.mt_note", message_type="comment")
        leader._bus_send("crm_whatsapp_bridge/new_message", {
            "title": _("WhatsApp reply overdue"),
            "message": _("%s is still waiting for a first reply.", lead.partner_id.display_name or lead.name),
            "lead_id": lead.id,
            "lead_name": lead.name,
        })

    def _format_time(self, value, user):
        return fields.Datetime.context_timestamp(self.with_context(tz=user.tz or "UTC"), value).strftime("%H:%M")


class CrmLead(models.Model):
    _inherit = "crm.lead"

    whatsapp_conversation_id = fields.Many2one("crm.whatsapp.conversation", "Current Conversation",
                                               readonly=True, copy=False, ondelete="set null")
    whatsapp_conversation_ids = fields.One2many("crm.whatsapp.conversation", "lead_id", "Conversations")
    whatsapp_waiting_since = fields.Datetime(
        "Waiting for Reply Since", readonly=True, copy=False, index="btree_not_null",
        help="When the customer opened the conversation that nobody has answered yet.")
    whatsapp_sla_deadline = fields.Datetime("Reply Due", readonly=True, copy=False)
    whatsapp_sla_state = fields.Selection(related="whatsapp_conversation_id.sla_state", string="First Response")
    whatsapp_window_end = fields.Datetime(
        "Free Messages Until", compute="_compute_whatsapp_window_end",
        help="24 hours after the customer's last message: after that, WhatsApp only accepts templates.")

    def _compute_whatsapp_window_end(self):
        last_inbound = dict(self.env["crm.whatsapp.message"]._read_group(
            [("lead_id", "in", self.ids), ("direction", "=", "in")], ["lead_id"], ["message_date:max"]))
        for lead in self:
            last = last_inbound.get(lead)
            lead.whatsapp_window_end = last + CONVERSATION_WINDOW if last else False

    def _whatsapp_sla_deadline_from(self, start):
        """When the first reply is due for a conversation opened at ``start`` (working time), or False."""
        self.ensure_one()
        minutes = self.team_id.whatsapp_sla_minutes if self.team_id else DEFAULT_SLA_MINUTES
        if minutes <= 0:
            return False
        calendar = (self.user_id._whatsapp_calendar() if self.user_id
                    else (self.company_id or self.env.company).resource_calendar_id)
        due = calendar.plan_hours(minutes / 60, start) if calendar else False
        return due or start + timedelta(minutes=minutes)

    @api.model
    def _whatsapp_inbound_received(self, messages):
        """Customer messages (in date order): each one after 24 hours of silence on its lead
        opens a conversation and starts its clock."""
        history = {}
        # One read for the whole batch: the inbound messages of its leads in the window before it.
        for earlier in self.env["crm.whatsapp.message"].search_fetch([
            ("lead_id", "in", messages.lead_id.ids), ("direction", "=", "in"),
            ("message_date", ">", messages[0].message_date - CONVERSATION_WINDOW),
            ("message_date", "<=", messages[-1].message_date),
        ], ["lead_id", "message_date"]):
            history.setdefault(earlier.lead_id, []).append((earlier.message_date, earlier.id))
        # Messages of the same second are ordered by id, so one of a burst opens the conversation.
        openings = [message for message in messages if not any(
            (date, id_) < (message.message_date, message.id)
            and date > message.message_date - CONVERSATION_WINDOW
            for date, id_ in history.get(message.lead_id, ()))]
        if not openings:
            return
        deadlines = [message.lead_id._whatsapp_sla_deadline_from(message.message_date) for message in openings]
        # sudo: conversations are written by the system only (salespeople read them).
        conversations = self.env["crm.whatsapp.conversation"].sudo().create([{
            "lead_id": message.lead_id.id,
            "account_id": message.account_id.id,
            "opening_message_id": message.id,
            "team_id": message.lead_id.team_id.id,
            "user_id": message.lead_id.user_id.id,
            "company_id": message.lead_id.company_id.id,
            "started_at": message.message_date,
            "deadline": deadline,
            "sla_state": "running" if deadline else "none",
        } for message, deadline in zip(openings, deadlines, strict=True)])
        latest = {}  # a lead shows its latest conversation
        for message, deadline, conversation in zip(openings, deadlines, conversations, strict=True):
            latest[message.lead_id] = {"whatsapp_conversation_id": conversation.id,
                                       "whatsapp_waiting_since": message.message_date,
                                       "whatsapp_sla_deadline": deadline}
        for lead, values in latest.items():
            lead.sudo().write(values)
        if any(deadlines):
            self.env.ref(SLA_CRON_XMLID).sudo()._trigger(sorted({deadline for deadline in deadlines if deadline}))

    def _whatsapp_reply_sent(self, message):
        """A reply from Odoo (composer or template): stop the clock of the open conversation."""
        self.ensure_one()
        if not self.whatsapp_waiting_since:
            return
        self.whatsapp_conversation_id.sudo()._stop_clock(message)
        self.sudo().write({"whatsapp_waiting_since": False, "whatsapp_sla_deadline": False})


    # ------------------------------------------------------------------
    # GET /crm/stats
    # ------------------------------------------------------------------

    @api.model
    def _api_stats(self, params):
        result = super()._api_stats(params)
        result["whatsapp_sla"] = self._api_whatsapp_sla(params)
        return result

    @api.model
    def _api_whatsapp_sla(self, params):
        """First-response numbers of the conversations started in [date_from, date_to), overall,
        per salesperson and per team; the team, salesperson and source filters apply to their leads."""
        date_from = parse_datetime("date_from", params.get("date_from"))
        date_to = parse_datetime("date_to", params.get("date_to"))
        domain = [("started_at", ">=", date_from), ("started_at", "<", date_to),
                  ("lead_id", "any", self._api_common_domain(params))]
        Conversations = self.env["crm.whatsapp.conversation"].with_context(active_test=False)
        measures = ["__count", "sla_met_count:sum", "sla_missed_count:sum", "replied_at:count",
                    "response_median_minutes:avg", "response_p90_minutes:avg"]

        def numbers(count, met, missed, replied, median_minutes, p90_minutes):
            return {
                "conversations": count, "met": met, "missed": missed,
                "median_first_response_seconds": round(median_minutes * 60, 1) if replied else None,
                "p90_first_response_seconds": round(p90_minutes * 60, 1) if replied else None,
            }

        [total] = Conversations._read_group(domain, [], measures)
        return dict(
            numbers(*total),
            waiting=Conversations.search_count(domain + [("replied_at", "=", False)]),
            by_salesperson=[dict(salesperson=_api_ref(user), **numbers(*row))
                            for user, *row in Conversations._read_group(domain, ["user_id"], measures)],
            by_team=[dict(team=_api_ref(team), **numbers(*row))
                     for team, *row in Conversations._read_group(domain, ["team_id"], measures)],
        )


def _api_ref(record):
    return {"id": record.id, "name": record.display_name} if record else None


class CrmWhatsappMessage(models.Model):
    _inherit = "crm.whatsapp.message"

    is_automatic = fields.Boolean("Automatic Reply", readonly=True,
                                  help="A welcome or away message sent by the number, not by a person.")

    @api.model_create_multi
    def create(self, vals_list):
        messages = super().create(vals_list)
        ordered = messages.filtered("lead_id").sorted(lambda m: (m.message_date, m.id))
        # Consecutive inbound messages are handled together; replies in between keep their place.
        for inbound, run in groupby(ordered, key=lambda message: message.direction == "in"):
            run = self.browse(message.id for message in run)
            if inbound:
                self.env["crm.lead"]._whatsapp_inbound_received(run)
                continue
            for message in run.filtered(lambda m: not m.is_automatic):
                message.lead_id._whatsapp_reply_sent(message)
        return messages

    def _outbound_chatter_body(self):
        body = super()._outbound_chatter_body()
        if self.is_automatic:
            return Markup('<span class="badge text-bg-light me-1">%s</span>') % _("Automatic") + body
        return body

    # ------------------------------------------------------------------
    # Welcome and away messages
    # ------------------------------------------------------------------

    @api.model
    def _whatsapp_queue_automatic(self, lead, account, partner, body):
        """Queue an automatic reply on the outbound path: it is sent after this transaction commits."""
        return self._queue_outbound(lead, account, partner,
                                    {"message_type": "text", "body": body, "is_automatic": True})

    def _whatsapp_send_auto_replies(self):
        """The welcome (working hours) or away message for the conversations these messages opened."""
        # Numbers without a welcome or away message need no working-hours check.
        openings = self.filtered(lambda message: message.account_id.welcome_message
                                 or message.account_id.away_message)
        conversations = self.env["crm.whatsapp.conversation"].sudo().search([
            ("opening_message_id", "in", openings.ids), ("auto_reply_message_id", "=", False)]) if openings else []
        for conversation in conversations:
            opening = conversation.opening_message_id
            account, partner = opening.account_id, opening.partner_id
            body = (account.welcome_message if account._whatsapp_in_hours(opening.message_date)
                    else account.away_message)
            if not body or not partner or not self._whatsapp_may_send_automatic(partner, account):
                continue
            conversation.auto_reply_message_id = self.sudo()._whatsapp_queue_automatic(
                conversation.lead_id, account, partner, body)


class CrmWhatsappAccount(models.Model):
    _inherit = "crm.whatsapp.account"

    welcome_message = fields.Text(
        "Welcome Message",
        help="Sent once, automatically, when a customer opens a conversation during working hours.")
    away_message = fields.Text(
        "Away Message",
        help="Sent once, automatically, when a customer opens a conversation outside working hours.")

    def _whatsapp_in_hours(self, moment):
        """Whether someone answers at ``moment``: a member of the team (or the default salesperson) works."""
        self.ensure_one()
        people = self.team_id.member_ids | self.user_id
        if people:
            return bool(people._whatsapp_working_at(moment))
        return works_at(self.company_id.resource_calendar_id, self.env["resource.resource"], moment)
