from datetime import timedelta, timezone

from odoo import api, fields, models

from ..tools.analytics import (
    CTWA_ATTRIBUTION_SECONDS,
    capi_event,
    capi_messaging_event,
    event_id,
    ga4_event,
    ga4_user_properties,
    pseudonymous_client_id,
)
from ..tools.phone import to_e164

# Leads from these UTM sources are funnel leads (besides Lead Ads leads and tracked web visitors).
FUNNEL_SOURCE_XMLIDS = (
    "crm_whatsapp_bridge.utm_source_whatsapp",
    "utm.utm_source_facebook",
    "crm_whatsapp_bridge.utm_source_instagram",
)
# WhatsApp's customer-service window: a customer message after this much silence opens a new conversation.
CONVERSATION_WINDOW = timedelta(hours=24)


class CrmLead(models.Model):
    _inherit = "crm.lead"

    ga_client_id = fields.Char(
        "GA Client ID", copy=False,
        help="Google Analytics client id of the visitor (from the _ga cookie, e.g. sent by a web form). "
             "Funnel events sent to GA4 use it; without it, a stable pseudonymous id derived from the lead is used.")
    analytics_event_ids = fields.One2many("crm.analytics.event", "lead_id", "Analytics Events",
                                          groups="base.group_system")
    whatsapp_ctwa_clicked_at = fields.Datetime(
        "Ad Clicked On", readonly=True, copy=False,
        help="When the conversation from the Click-to-WhatsApp ad reached Odoo. Meta attributes conversions "
             "to the ad for 7 days after the click.")

    # ------------------------------------------------------------------
    # Hooks: every funnel step queues its events in the current transaction
    # ------------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("whatsapp_ctwa_clid") and not vals.get("whatsapp_ctwa_clicked_at"):
                vals["whatsapp_ctwa_clicked_at"] = fields.Datetime.now()
        leads = super().create(vals_list)
        leads._analytics_queue([
            (lead, "generate_lead", False, False, "created", {}) for lead in leads
        ] + leads._analytics_click_items() + leads._analytics_stage_items())
        return leads

    def write(self, vals):
        previous = {lead.id: lead.stage_id.id for lead in self} if "stage_id" in vals else None
        if vals.get("whatsapp_ctwa_clid") and not vals.get("whatsapp_ctwa_clicked_at"):
            vals = dict(vals, whatsapp_ctwa_clicked_at=fields.Datetime.now())
        result = super().write(vals)
        if vals.get("whatsapp_ctwa_clid"):
            self._analytics_queue(self._analytics_click_items())
        if previous is not None:
            moved = self.filtered(lambda lead: lead.stage_id.id != previous[lead.id])
            moved._analytics_queue(moved._analytics_stage_items())
        if "active" in vals and not vals["active"] and not self.env.context.get("crm_analytics_lost_later"):
            self._analytics_lost()
        return result

    def action_set_lost(self, **additional_values):
        # The lost reason is written after the archive: queue the event once both are done.
        result = super(CrmLead, self.with_context(crm_analytics_lost_later=True)).action_set_lost(
            **additional_values)
        self._analytics_lost()
        return result

    def _analytics_lost(self):
        lost = self.filtered(lambda lead: not lead.active and not lead.probability)
        lost._analytics_queue([
            (lead, "close_unconvert_lead", False, False, "lost",
             {"unconvert_lead_reason": lead.lost_reason_id.name}) for lead in lost
        ])

    def _analytics_whatsapp_message_received(self, wa_message):
        """Queue ``whatsapp_message_received`` when ``wa_message`` opens a conversation.

        A conversation is WhatsApp's 24-hour customer-service window: the message
        opens one when the customer wrote nothing on this lead in the 24 hours before.
        """
        self.ensure_one()
        earlier = self.env["crm.whatsapp.message"].search_count([
            ("lead_id", "=", self.id), ("direction", "=", "in"), ("id", "!=", wa_message.id),
            ("message_date", "<=", wa_message.message_date),
            ("message_date", ">", wa_message.message_date - CONVERSATION_WINDOW),
        ], limit=1)
        if not earlier:
            self._analytics_queue([(self, "whatsapp_message_received", False, False, f"message{wa_message.id}", {})])

    def _analytics_stage_items(self):
        """Queue items for the mapped stage each lead is in; one transition per lead and stage."""
        return [
            (lead, lead.stage_id.ga4_event, lead.stage_id._meta_event_for_stage(),
             lead.stage_id._messaging_event_for_stage(), f"stage{lead.stage_id.id}", {})
            for lead in self if lead.stage_id and (lead.stage_id.ga4_event or lead.stage_id.meta_event_name
                                                   or lead.stage_id._messaging_event_for_stage())
        ]

    def _analytics_click_items(self):
        """``LeadSubmitted`` once per lead, when its conversation came from a Click-to-WhatsApp ad."""
        return [(lead, False, False, "LeadSubmitted", "ctwa", {}) for lead in self if lead.whatsapp_ctwa_clid]

    # ------------------------------------------------------------------
    # Building the events
    # ------------------------------------------------------------------

    def _analytics_funnel_leads(self):
        """The leads whose funnel is reported: from WhatsApp or Lead Ads, or with a GA client id."""
        source_ids = {self.env.ref(xmlid, raise_if_not_found=False).id for xmlid in FUNNEL_SOURCE_XMLIDS} - {None}
        return self.filtered(
            lambda lead: lead.source_id.id in source_ids or lead.meta_leadgen_id or lead.ga_client_id)

    def _analytics_queue(self, items):
        """Queue GA4 and Meta events for ``(lead, ga4 event, meta CRM event, messaging event, transition ref,
        extra GA4 params)`` items.

        Destinations that are not configured get nothing queued; only funnel
        leads are reported, and Meta only hears about leads that came from Lead Ads
        (CRM events) or from a Click-to-WhatsApp ad (business messaging events).
        """
        Event = self.env["crm.analytics.event"]
        if not items:
            return
        config = Event._analytics_config()
        if not (config["ga4"] or config["meta"]):
            return
        funnel_ids = set(self._analytics_funnel_leads().ids)  # a set: `in` on a recordset scans its ids
        now = fields.Datetime.now()
        rows = []
        for lead, ga4_name, meta_name, messaging_name, ref, extra in items:
            if lead.id not in funnel_ids:
                continue
            if ga4_name and config["ga4"]:
                rows.append(lead._analytics_ga4_row(ga4_name, ref, extra, config, now))
            # Meta's lead ids are numbers; anything else cannot match a lead there.
            if meta_name and config["meta"] and (lead.meta_leadgen_id or "").isdigit():
                rows.append(lead._analytics_meta_row(meta_name, ref, config, now))
            if (messaging_name and config["meta"] and lead.whatsapp_ctwa_clid
                    and lead.whatsapp_account_id.waba_id):
                rows.append(lead._analytics_messaging_row(messaging_name, ref, config, now))
        Event._enqueue(rows)

    def _analytics_client_id(self):
        """The visitor's GA client id, else a pseudonymous id that never changes for this lead."""
        self.ensure_one()
        if self.ga_client_id:
            return self.ga_client_id.strip()
        seed = self.env["ir.config_parameter"].sudo().get_param("database.uuid", "")
        created = (self.create_date or fields.Datetime.now()).replace(tzinfo=timezone.utc)
        return pseudonymous_client_id(seed, self.id, created.timestamp())

    def _analytics_row(self, destination, name, ref, config, now):
        return {
            "destination": destination,
            "name": name,
            "lead_id": self.id,
            "stage_id": self.stage_id.id or None,
            "dedup_key": f"{destination}:{self.id}:{name}:{ref}",
            "event_time": now,
            "debug": config["debug"],
        }

    def _analytics_event_id(self, row):
        """The event's stable id, sent with it so a replay is recognised (see tools.analytics.event_id)."""
        return event_id(self.env["ir.config_parameter"].sudo().get_param("database.uuid", ""), row["dedup_key"])

    def _analytics_ga4_row(self, name, ref, extra, config, now):
        """A GA4 event with no personal data: ids, amounts and the UTM source only."""
        source = (self.source_id.name or "").lower()
        params = {
            "currency": self.company_currency.name,
            "value": self.expected_revenue or 0.0,
            "lead_source": source,
            "engagement_time_msec": 1,
            **extra,
        }
        client_id = self._analytics_client_id()
        row = self._analytics_row("ga4", name, ref, config, now)
        params["crm_event_id"] = self._analytics_event_id(row)
        row.update(batch_key=client_id, payload={
            "client_id": client_id,
            "user_properties": ga4_user_properties({"lead_source": source}),
            "events": [ga4_event(name, params)],
        })
        return row

    def _analytics_meta_row(self, name, ref, config, now):
        """A Conversions API for CRM event: Meta's lead id, and the hashed email and phone."""
        country = self.country_id or self.partner_id.country_id or self.company_id.country_id
        raw_phone = self.phone or self.partner_id.phone or self.partner_id.mobile
        row = self._analytics_row("meta", name, ref, config, now)
        row.update(batch_key=config["dataset_id"], payload=capi_event(
            name, now.replace(tzinfo=timezone.utc).timestamp(), self.meta_leadgen_id,
            email=self.email_from or self.partner_id.email,
            phone=to_e164(raw_phone, country.code) if raw_phone else None,
            event_id=self._analytics_event_id(row)))
        return row

    def _analytics_messaging_row(self, name, ref, config, now):
        """A Conversions API for Business Messaging event: the WABA and Meta's click id, no personal data.

        An event of a click older than Meta's 7-day attribution window is recorded as
        skipped, with the reason, and never sent.
        """
        row = self._analytics_row("meta", name, ref, config, now)
        row["dedup_key"] = f"messaging:{self.id}:{name}:{ref}"
        purchase = name == "Purchase"
        row["payload"] = capi_messaging_event(
            name, now.replace(tzinfo=timezone.utc).timestamp(), self.whatsapp_account_id.waba_id,
            self.whatsapp_ctwa_clid, event_id=self._analytics_event_id(row),
            value=(self.expected_revenue or 0.0) if purchase else None,
            currency=self.company_currency.name if purchase else None)
        row["batch_key"] = config["dataset_id"]
        clicked_at = self.whatsapp_ctwa_clicked_at or self.create_date or now
        row["attribution_end"] = clicked_at + timedelta(seconds=CTWA_ATTRIBUTION_SECONDS)
        if row["attribution_end"] < now:
            row["skip_reason"] = self.env["crm.analytics.event"]._click_too_old_reason()
        return row
