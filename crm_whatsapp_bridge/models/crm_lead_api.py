from odoo import api, models
from odoo.tools import SQL

from ..tools.api_params import (
    LEAD_TYPES,
    ApiError,
    bad_parameter,
    decode_cursor,
    encode_cursor,
    median,
    parse_choice,
    parse_datetime,
    parse_id,
    parse_limit,
    rate,
)

# Names of the ``source`` parameter that stand for a UTM source record of this addon or of utm.
SOURCE_ALIASES = {
    "whatsapp": "crm_whatsapp_bridge.utm_source_whatsapp",
    "facebook": "utm.utm_source_facebook",
    "instagram": "crm_whatsapp_bridge.utm_source_instagram",
}


def _iso(value):
    return value.isoformat(timespec="seconds") + "Z" if value else None


def _ref(record):
    return {"id": record.id, "name": record.display_name} if record else None


class CrmLead(models.Model):
    _inherit = "crm.lead"

    def _auto_init(self):
        result = super()._auto_init()
        # Keyset paging of GET /crm/leads walks (write_date, id) in order.
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS crm_lead_write_date_id_index ON crm_lead (write_date, id)")
        return result

    # ------------------------------------------------------------------ filters

    @api.model
    def _api_record_or_404(self, model, name, record_id):
        """The record named by a filter parameter, if the API user may see it."""
        if record_id is None:
            return None
        record = self.env[model].browse(record_id).exists()
        if not record:
            raise ApiError(404, "not_found", f"{name}: no record with id {record_id}")
        return record

    @api.model
    def _api_source_domain(self, raw):
        if raw in (None, ""):
            return []
        xmlid = SOURCE_ALIASES.get(raw.lower())
        source = self.env.ref(xmlid, raise_if_not_found=False) if xmlid else None
        if not source:
            source = self.env["utm.source"].search([("name", "=ilike", raw)])
        if not source:
            if xmlid:  # a known channel that simply has no source record in this database yet
                return [("id", "=", False)]
            raise bad_parameter("source", f"no UTM source is named {raw!r}")
        return [("source_id", "in", source.ids)]

    @api.model
    def _api_stage_domain(self, raw):
        if raw in (None, ""):
            return []
        if raw.isdigit():
            return [("stage_id", "=", self._api_record_or_404("crm.stage", "stage", int(raw)).id)]
        stages = self.env["crm.stage"].search([("name", "=ilike", raw)])
        if not stages:
            raise bad_parameter("stage", f"no stage is named {raw!r}")
        return [("stage_id", "in", stages.ids)]

    @api.model
    def _api_common_domain(self, params):
        """The filters that /crm/leads and /crm/stats share: team, salesperson, source."""
        domain = self._api_source_domain(params.get("source"))
        team = self._api_record_or_404("crm.team", "team_id", parse_id("team_id", params.get("team_id")))
        if team:
            domain.append(("team_id", "=", team.id))
        user = self._api_record_or_404("res.users", "user_id", parse_id("user_id", params.get("user_id")))
        if user:
            domain.append(("user_id", "=", user.id))
        return domain

    @api.model
    def _api_leads_domain(self, params):
        domain = self._api_common_domain(params) + self._api_stage_domain(params.get("stage"))
        lead_type = parse_choice("type", params.get("type"), LEAD_TYPES)
        if lead_type:
            domain.append(("type", "=", lead_type))
        created_after = parse_datetime("created_after", params.get("created_after"))
        if created_after:
            domain.append(("create_date", ">", created_after))
        updated_after = parse_datetime("updated_after", params.get("updated_after"))
        if updated_after:
            domain.append(("write_date", ">", updated_after))
        if text := (params.get("q") or "").strip():
            domain += ["|", "|", "|", "|", ("name", "ilike", text), ("email_from", "ilike", text),
                       ("partner_name", "ilike", text), ("phone", "ilike", text),
                       ("phone_sanitized", "ilike", text)]
        return domain

    # ------------------------------------------------------------------- leads

    @api.model
    def _api_search_leads(self, params):
        """One page of GET /crm/leads: ``{"data": [...], "next_cursor": str | None}``.

        Leads come in (write_date, id) order, lost ones included (``active`` tells). The
        cursor is the position after the page's last lead, so a lead edited after it was
        served comes again later with its new values, and none is skipped.
        """
        limit = parse_limit(params.get("limit"))
        domain = self._api_leads_domain(params)
        position = decode_cursor(params.get("cursor"))
        if position:
            stamp, last_id = position
            # The ">=" gives the (write_date, id) index a range start; the OR alone would make
            # PostgreSQL read every row before the cursor on deep pages.
            domain += [("write_date", ">=", stamp),
                       "|", ("write_date", ">", stamp), ("id", ">", last_id)]
        leads = self.with_context(active_test=False).search_fetch(
            domain, self._api_lead_fields(), order="write_date, id", limit=limit + 1)
        page = leads[:limit]
        next_cursor = encode_cursor(page[-1].write_date, page[-1].id) if len(leads) > limit else None
        return {"data": page._api_lead_dicts(), "next_cursor": next_cursor}

    @api.model
    def _api_lead_fields(self):
        return ["name", "type", "stage_id", "probability", "expected_revenue", "company_id",
                "partner_id", "partner_name", "contact_name", "email_from", "phone_sanitized", "user_id", "team_id",
                "source_id", "medium_id", "campaign_id", "whatsapp_account_id", "create_date",
                "write_date", "date_conversion", "date_closed", "active"]

    def _api_lead_dicts(self):
        """The JSON form of the leads, in order; phones in E.164 where they can be read."""
        base_url = self.browse().get_base_url()
        company_currency = self.env.company.currency_id
        last_messages = dict(self.env["crm.whatsapp.message"].sudo()._read_group(
            [("lead_id", "in", self.ids)], ["lead_id"], ["message_date:max"]))
        result = []
        for lead in self:
            partner = lead.partner_id
            won = lead.active and lead.stage_id.is_won
            lost = not lead.active and not lead.probability
            result.append({
                "id": lead.id,
                "name": lead.name,
                "type": lead.type,
                "stage": _ref(lead.stage_id),
                "probability": lead.probability,
                "expected_revenue": lead.expected_revenue,
                # company_currency's own compute costs a query per page; this is its rule.
                "currency": (lead.company_id.currency_id or company_currency).name or None,
                "partner": {
                    "id": partner.id or None,
                    "name": partner.name or lead.contact_name or lead.partner_name or None,
                    "email": partner.email or lead.email_from or None,
                    "phone": lead.phone_sanitized or lead._api_e164(partner.phone or partner.mobile),
                },
                "salesperson": _ref(lead.user_id),
                "team": _ref(lead.team_id),
                "source": lead.source_id.name or None,
                "medium": lead.medium_id.name or None,
                "campaign": lead.campaign_id.name or None,
                "whatsapp_number": (lead.whatsapp_account_id.display_phone_number
                                    or lead.whatsapp_account_id.name or None),
                "last_whatsapp_message_at": _iso(last_messages.get(lead)),
                "created_at": _iso(lead.create_date),
                "updated_at": _iso(lead.write_date),
                "converted_at": _iso(lead.date_conversion),
                "won_at": _iso(lead.date_closed) if won else None,
                "lost_at": _iso(lead.date_closed or lead.write_date) if lost else None,
                "active": lead.active,
                "url": f"{base_url}/odoo/crm/{lead.id}",
            })
        return result

    def _api_e164(self, number):
        if not number:
            return None
        country = self.country_id or self.partner_id.country_id or self.env.company.country_id
        return self._phone_format(number=number, country=country, force_format="E164") or number

    # ------------------------------------------------------------------- stats

    @api.model
    def _api_stats_domain(self, params):
        """The cohort of /crm/stats: leads created in [date_from, date_to), lost ones included."""
        date_from = parse_datetime("date_from", params.get("date_from"))
        date_to = parse_datetime("date_to", params.get("date_to"))
        if not date_from or not date_to:
            raise bad_parameter("date_from" if not date_from else "date_to", "is required")
        if date_to <= date_from:
            raise bad_parameter("date_to", "must be after date_from")
        return [("create_date", ">=", date_from), ("create_date", "<", date_to)] + self._api_common_domain(params)

    @api.model
    def _api_stats(self, params):
        """GET /crm/stats: the funnel of the leads created in the range, as Odoo's filters count it.

        Won is Odoo's *Won* filter (active, won stage), lost its *Lost* filter (archived
        with probability 0), converted means the lead became an opportunity.
        """
        domain = self._api_stats_domain(params)
        Leads = self.with_context(active_test=False)
        created = Leads.search_count(domain)
        converted = Leads.search_count(domain + [("type", "=", "opportunity")])
        won = Leads.search_count(domain + [("active", "=", True), ("stage_id.is_won", "=", True)])
        lost = Leads.search_count(domain + [("active", "=", False), ("probability", "=", 0)])
        by_stage = [{"stage": _ref(stage), "count": count}
                    for stage, count in Leads._read_group(domain, ["stage_id"], ["__count"])]
        by_source = [{"source": source.name or None, "count": count}
                     for source, count in Leads._read_group(domain, ["source_id"], ["__count"])]
        response_times = Leads.search(domain)._whatsapp_first_response_seconds()
        return {
            "date_from": _iso(parse_datetime("date_from", params["date_from"])),
            "date_to": _iso(parse_datetime("date_to", params["date_to"])),
            "leads_created": created,
            "converted_to_opportunity": converted,
            "won": won,
            "lost": lost,
            "win_rate_of_closed": rate(won, won + lost),
            "win_rate_of_created": rate(won, created),
            "whatsapp_first_response": {
                "leads_answered": len(response_times),
                "median_seconds": median(response_times),
            },
            "by_stage": by_stage,
            "by_source": by_source,
        }

    def _whatsapp_first_response_seconds(self):
        """Seconds from each lead's first customer message to the first reply a user sent after it.

        Leads without a customer message or without a reply yet are left out.
        """
        if not self:
            return []
        self.env["crm.whatsapp.message"].flush_model(["lead_id", "direction", "message_date", "user_id"])
        rows = self.env.execute_query(SQL(
            """
            WITH first_in AS (
                SELECT lead_id, MIN(message_date) AS received
                  FROM crm_whatsapp_message
                 WHERE direction = 'in' AND lead_id = ANY(%(ids)s)
              GROUP BY lead_id
            )
            SELECT EXTRACT(EPOCH FROM MIN(reply.message_date) - first_in.received)
              FROM first_in
              JOIN crm_whatsapp_message reply
                ON reply.lead_id = first_in.lead_id AND reply.direction = 'out'
               AND reply.user_id IS NOT NULL AND reply.message_date >= first_in.received
          GROUP BY first_in.lead_id, first_in.received
            """, ids=self.ids))
        return [float(seconds) for (seconds,) in rows]
