from odoo import api, models
from odoo.tools import SQL

from ..tools.api_params import (
    LEAD_TYPES,
    ApiError,
    bad_parameter,
    decode_cursor,
    encode_cursor,
    like_literal,
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


# The commit-ordered marker. A column ``cwb_txid`` holds the PostgreSQL transaction id
# (``pg_current_xact_id()``, 64 bits, never wraps) of the transaction that last inserted or
# updated the row: a column default stamps inserts, a trigger stamps updates, so raw SQL
# writes are stamped too. Unlike ``write_date`` (the transaction's *start*), it lets a reader
# know which rows can still appear behind it: only those of a transaction still running.
# Readers walk (cwb_txid, id) in order and never go past :func:`commit_horizon`.
MARKER_FUNCTION = SQL("""
    CREATE OR REPLACE FUNCTION cwb_stamp_commit_marker() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.cwb_txid := pg_current_xact_id()::text::bigint;
        RETURN NEW;
    END $$""")


def install_commit_marker(cr, table, updates=True):
    """Give ``table`` the commit-ordered marker column, its (cwb_txid, id) index and, when its
    rows are ever updated, the trigger that stamps updates. Rows older than the column get 0."""
    name = SQL.identifier(table)
    cr.execute(SQL("ALTER TABLE %s ADD COLUMN IF NOT EXISTS cwb_txid bigint NOT NULL DEFAULT 0", name))
    cr.execute(SQL("ALTER TABLE %s ALTER COLUMN cwb_txid SET DEFAULT pg_current_xact_id()::text::bigint", name))
    cr.execute(SQL("CREATE INDEX IF NOT EXISTS %s ON %s (cwb_txid, id)",
                   SQL.identifier(f"{table}_cwb_txid_id_index"), name))
    if updates:
        cr.execute(MARKER_FUNCTION)
        cr.execute(SQL("DROP TRIGGER IF EXISTS cwb_commit_marker ON %s", name))
        cr.execute(SQL("CREATE TRIGGER cwb_commit_marker BEFORE UPDATE ON %s "
                       "FOR EACH ROW EXECUTE FUNCTION cwb_stamp_commit_marker()", name))


def uninstall_commit_marker(cr, tables):
    """Remove what :func:`install_commit_marker` added to ``tables``, then its trigger function."""
    for table in tables:
        name = SQL.identifier(table)
        cr.execute(SQL("DROP TRIGGER IF EXISTS cwb_commit_marker ON %s", name))
        cr.execute(SQL("ALTER TABLE %s DROP COLUMN IF EXISTS cwb_txid", name))  # drops its index too
    cr.execute("DROP FUNCTION IF EXISTS cwb_stamp_commit_marker()")


def commit_horizon(cr):
    """The marker below which every write to this database is finished and visible to ``cr``.

    That is the oldest transaction of this database still running when ``cr``'s snapshot was
    taken (or the snapshot's end when none was), and never past ``cr``'s own transaction.
    Running transactions of other databases of the cluster cannot write here, so they do not
    hold readers back; a running transaction that cannot be placed does, including one of
    another database that ended since the snapshot was taken: call this first in a transaction.
    """
    cr.execute("""
        SELECT LEAST(pg_snapshot_xmax(s)::text::bigint,
                     pg_current_xact_id_if_assigned()::text::bigint,
                     (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s) AS x
                       WHERE mod(x::text::bigint, 4294967296) NOT IN (
                             SELECT backend_xid::text::bigint FROM pg_stat_activity
                              WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
                          UNION ALL
                             SELECT transaction::text::bigint FROM pg_prepared_xacts
                              WHERE database <> current_database())))
          FROM pg_current_snapshot() AS s""")
    return cr.fetchone()[0]


def _iso(value):
    return value.isoformat(timespec="seconds") + "Z" if value else None


def _ref(record):
    return {"id": record.id, "name": record.display_name} if record else None


def _pair(record_id, name):
    return {"id": record_id, "name": name} if record_id else None


def lead_rows_sql(lang):
    """SELECT ... FROM crm_lead l (and what a lead row shows), to be followed by a WHERE.

    One row per lead with its contact, people, UTM and Meta/WhatsApp data, flat: the JSON
    API nests it, the BigQuery export loads it as it is. Won/lost follow Odoo's Won and
    Lost filters; the phone is the stored E.164 one.
    """
    return SQL(
        """
        SELECT l.id AS lead_id, l.name, l.type, l.stage_id, COALESCE(s.name->>%(lang)s, s.name->>'en_US') AS stage,
               COALESCE(l.probability, 0) AS probability, COALESCE(l.expected_revenue, 0) AS expected_revenue,
               COALESCE(cur.name, (SELECT dc.name FROM res_company c0 JOIN res_currency dc ON dc.id = c0.currency_id
                                    ORDER BY c0.id LIMIT 1)) AS currency,
               l.partner_id, COALESCE(p.name, l.contact_name, l.partner_name) AS partner_name,
               COALESCE(p.email, l.email_from) AS partner_email,
               COALESCE(l.phone_sanitized, p.phone_sanitized) AS partner_phone,
               l.user_id, up.name AS salesperson, l.team_id, COALESCE(t.name->>%(lang)s, t.name->>'en_US') AS team,
               src.name AS utm_source, med.name AS utm_medium, camp.name AS utm_campaign,
               l.meta_leadgen_id, l.meta_ad_id, l.meta_form_ref AS meta_form_id,
               COALESCE(wa.display_phone_number, wa.name) AS whatsapp_number,
               (SELECT MAX(w.message_date) FROM crm_whatsapp_message w WHERE w.lead_id = l.id)
                   AS last_whatsapp_message_at,
               conv.sla_state AS whatsapp_sla_state, conv.response_seconds AS whatsapp_first_response_seconds,
               conv.deadline AS whatsapp_reply_due_at,
               cs.marketing AS whatsapp_marketing_consent, cs.opt_in_source AS whatsapp_consent_source,
               l.create_date AS created_at, l.write_date AS updated_at, l.date_conversion AS converted_at,
               CASE WHEN l.active AND s.is_won THEN l.date_closed END AS won_at,
               CASE WHEN NOT l.active AND COALESCE(l.probability, 0) = 0 THEN COALESCE(l.date_closed, l.write_date)
               END AS lost_at,
               l.active, l.cwb_txid AS version
          FROM crm_lead l
     LEFT JOIN crm_stage s ON s.id = l.stage_id
     LEFT JOIN res_company c ON c.id = l.company_id
     LEFT JOIN res_currency cur ON cur.id = c.currency_id
     LEFT JOIN res_partner p ON p.id = l.partner_id
     LEFT JOIN res_users u ON u.id = l.user_id
     LEFT JOIN res_partner up ON up.id = u.partner_id
     LEFT JOIN crm_team t ON t.id = l.team_id
     LEFT JOIN utm_source src ON src.id = l.source_id
     LEFT JOIN utm_medium med ON med.id = l.medium_id
     LEFT JOIN utm_campaign camp ON camp.id = l.campaign_id
     LEFT JOIN crm_whatsapp_account wa ON wa.id = l.whatsapp_account_id
     LEFT JOIN crm_whatsapp_conversation conv ON conv.id = l.whatsapp_conversation_id
     LEFT JOIN LATERAL (SELECT c.marketing, c.opt_in_source FROM crm_whatsapp_consent c
                         WHERE c.partner_id = l.partner_id
                         ORDER BY c.account_id = l.whatsapp_account_id DESC, c.changed_at DESC NULLS LAST
                         LIMIT 1) cs ON TRUE
        """, lang=lang)


class CrmLead(models.Model):
    _inherit = "crm.lead"

    def _auto_init(self):
        result = super()._auto_init()
        # GET /crm/leads and the BigQuery export walk (cwb_txid, id) in order.
        install_commit_marker(self.env.cr, self._table)
        self.env.cr.execute("DROP INDEX IF EXISTS crm_lead_write_date_id_index")  # the former keyset
        return result

    @api.model
    def _commit_horizon(self):
        """:func:`commit_horizon` of this environment's transaction (tests that run in one
        transaction replace it, as their own writes count as committed there)."""
        return commit_horizon(self.env.cr)

    # ------------------------------------------------------------------ filters

    @api.model
    def _api_record_or_404(self, model, name, record_id):
        """The record named by a filter parameter, if the API user may see it."""
        if record_id is None:
            return None
        record = self.env[model].browse(record_id).exists()
        # A record the user may not read answers like a missing one: ids of other companies cannot be probed.
        if not record or not record.has_access("read"):
            raise ApiError(404, "not_found", f"{name}: no record with id {record_id}")
        return record

    @api.model
    def _api_source_domain(self, raw):
        if raw in (None, ""):
            return []
        xmlid = SOURCE_ALIASES.get(raw.lower())
        source = self.env.ref(xmlid, raise_if_not_found=False) if xmlid else None
        if not source:
            source = self.env["utm.source"].search([("name", "=ilike", like_literal(raw))])
        if not source:
            if xmlid:  # a known channel that simply has no source record in this database yet
                return [("id", "=", False)]
            raise bad_parameter("source", f"no UTM source is named {raw!r}")
        return [("source_id", "in", source.ids)]

    @api.model
    def _api_stage_domain(self, raw):
        if raw in (None, ""):
            return []
        if raw.isascii() and raw.isdigit():  # an id; "²" passes isdigit() alone, and is a name
            return [("stage_id", "=", self._api_record_or_404("crm.stage", "stage", parse_id("stage", raw)).id)]
        stages = self.env["crm.stage"].search([("name", "=ilike", like_literal(raw))])
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
        if text := like_literal((params.get("q") or "").strip()):
            domain += ["|", "|", "|", "|", ("name", "ilike", text), ("email_from", "ilike", text),
                       ("partner_name", "ilike", text), ("phone", "ilike", text),
                       ("phone_sanitized", "ilike", text)]
        return domain

    # ------------------------------------------------------------------- leads

    @api.model
    def _api_search_leads(self, params):
        """One page of GET /crm/leads: ``{"data": [...], "next_cursor": str | None, "sync_cursor": str}``.

        Leads come in commit order (the marker ``cwb_txid``, then id), lost ones included
        (``active`` tells), and only up to the oldest transaction still running, so a lead a
        long transaction writes comes once it commits, after the cursor, and none is skipped.
        ``next_cursor`` is the position after the page's last lead, null on the last page;
        ``sync_cursor`` is where a later call continues to get only what changed since.
        """
        horizon = self._commit_horizon()  # first, as close as can be to the request's snapshot
        limit = parse_limit(params.get("limit"))
        domain = self._api_leads_domain(params)
        after_marker, after_id = decode_cursor(params.get("cursor")) or (0, 0)
        query = self.with_context(active_test=False)._search(domain)
        query.add_where(SQL("(crm_lead.cwb_txid, crm_lead.id) > (%s, %s) AND crm_lead.cwb_txid < %s",
                            after_marker, after_id, horizon))
        query.order = SQL("crm_lead.cwb_txid, crm_lead.id")
        query.limit = limit + 1
        rows = self.env.execute_query(query.select("crm_lead.cwb_txid", "crm_lead.id"))
        page = rows[:limit]
        if len(rows) > limit:
            next_cursor = sync_cursor = encode_cursor(*page[-1])
        else:
            # Everything before the horizon that matches was on this page (or an earlier one).
            next_cursor, sync_cursor = None, encode_cursor(*max((horizon, 0), (after_marker, after_id)))
        leads = self.browse([lead_id for _marker, lead_id in page])
        return {"data": leads._api_lead_dicts(), "next_cursor": next_cursor, "sync_cursor": sync_cursor}

    def _api_lead_dicts(self):
        """The JSON form of the leads, in order, read in one query (the ids come from an ORM
        search, so record rules have already chosen them)."""
        if not self:
            return []
        base_url = self.browse().get_base_url()
        self.env.flush_all()
        rows = {row["lead_id"]: row for row in self.env.execute_query_dict(SQL(
            "%s WHERE l.id = ANY(%s)", lead_rows_sql(self.env.lang or "en_US"), self.ids))}
        result = []
        for lead_id in self.ids:
            row = rows[lead_id]
            result.append({
                "id": lead_id,
                "name": row["name"],
                "type": row["type"],
                "stage": _pair(row["stage_id"], row["stage"]),
                "probability": row["probability"],
                "expected_revenue": row["expected_revenue"],
                "currency": row["currency"],
                "partner": {"id": row["partner_id"], "name": row["partner_name"], "email": row["partner_email"],
                            "phone": row["partner_phone"]},
                "salesperson": _pair(row["user_id"], row["salesperson"]),
                "team": _pair(row["team_id"], row["team"]),
                "source": row["utm_source"],
                "medium": row["utm_medium"],
                "campaign": row["utm_campaign"],
                "whatsapp_number": row["whatsapp_number"],
                "last_whatsapp_message_at": _iso(row["last_whatsapp_message_at"]),
                "whatsapp_marketing_consent": row["whatsapp_marketing_consent"],
                "whatsapp_consent_source": row["whatsapp_consent_source"],
                "created_at": _iso(row["created_at"]),
                "updated_at": _iso(row["updated_at"]),
                "converted_at": _iso(row["converted_at"]),
                "won_at": _iso(row["won_at"]),
                "lost_at": _iso(row["lost_at"]),
                "active": row["active"],
                "url": f"{base_url}/odoo/crm/{lead_id}",
            })
        return result

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
