"""The BigQuery tables of the CRM export: their declared schemas and the latest-version view."""


def _field(name, field_type="STRING", mode="NULLABLE", description=""):
    field = {"name": name, "type": field_type, "mode": mode}
    if description:
        field["description"] = description
    return field


CRM_LEADS = [
    _field("lead_id", "INTEGER", "REQUIRED"),
    _field("name"),
    _field("type", description="lead or opportunity"),
    _field("stage_id", "INTEGER"),
    _field("stage"),
    _field("probability", "FLOAT64"),
    _field("expected_revenue", "FLOAT64"),
    _field("currency"),
    _field("partner_id", "INTEGER"),
    _field("partner_name"),
    _field("partner_email"),
    _field("partner_phone", description="E.164"),
    _field("user_id", "INTEGER"),
    _field("salesperson"),
    _field("team_id", "INTEGER"),
    _field("team"),
    _field("utm_source"),
    _field("utm_medium"),
    _field("utm_campaign"),
    _field("meta_leadgen_id"),
    _field("meta_ad_id"),
    _field("meta_form_id"),
    _field("whatsapp_number"),
    _field("last_whatsapp_message_at", "TIMESTAMP"),
    _field("whatsapp_sla_state", description="latest conversation: none, running, met or missed"),
    _field("whatsapp_first_response_seconds", "FLOAT64", description="latest conversation"),
    _field("whatsapp_reply_due_at", "TIMESTAMP", description="latest conversation's first-response deadline"),
    _field("whatsapp_marketing_consent", description="allowed, stopped or unknown; empty when never asked"),
    _field("whatsapp_consent_source", description="how the contact opted in (web_form, lead_ads, ...)"),
    _field("created_at", "TIMESTAMP"),
    _field("updated_at", "TIMESTAMP", "REQUIRED", "the version's time; one row per version"),
    _field("converted_at", "TIMESTAMP"),
    _field("won_at", "TIMESTAMP"),
    _field("lost_at", "TIMESTAMP"),
    _field("active", "BOOLEAN"),
    _field("version", "INTEGER", "REQUIRED", "the version's commit marker; (lead_id, version) names it"),
    _field("exported_at", "TIMESTAMP", "REQUIRED", "start of the export run that loaded the row"),
]

CRM_STAGE_HISTORY = [
    _field("tracking_id", "INTEGER", "REQUIRED"),
    _field("lead_id", "INTEGER", "REQUIRED"),
    _field("old_stage_id", "INTEGER"),
    _field("old_stage"),
    _field("new_stage_id", "INTEGER"),
    _field("new_stage"),
    _field("changed_at", "TIMESTAMP", "REQUIRED"),
    _field("changed_by_id", "INTEGER"),
    _field("changed_by"),
    _field("exported_at", "TIMESTAMP", "REQUIRED", "start of the export run that loaded the row"),
]

WHATSAPP_MESSAGES = [
    _field("message_id", "INTEGER", "REQUIRED"),
    _field("lead_id", "INTEGER"),
    _field("whatsapp_number"),
    _field("direction", description="in or out"),
    _field("message_type"),
    _field("state"),
    _field("message_at", "TIMESTAMP", "REQUIRED"),
    _field("status_at", "TIMESTAMP"),
    _field("updated_at", "TIMESTAMP"),
    _field("error_code", "INTEGER"),
    _field("body", description="only when the admin exports message text"),
    _field("version", "INTEGER", "REQUIRED", "the version's commit marker; (message_id, version) names it"),
    _field("exported_at", "TIMESTAMP", "REQUIRED", "start of the export run that loaded the row"),
]

# table -> (schema, day-partitioning field)
TABLES = {
    "crm_leads": (CRM_LEADS, "updated_at"),
    "crm_stage_history": (CRM_STAGE_HISTORY, "changed_at"),
    "whatsapp_messages": (WHATSAPP_MESSAGES, "message_at"),
}

# table -> the columns that name one fact. A full re-export loads every current fact again,
# so a table may hold copies; its "_unique" view keeps one row per fact (the newest export).
KEYS = {
    "crm_leads": ("lead_id", "version"),
    "crm_stage_history": ("tracking_id",),
    "whatsapp_messages": ("message_id", "version"),
}

# view -> (table, partition, order): one row per partition, the first in that order.
VIEWS = {
    **{f"{table}_unique": (table, KEYS[table], "exported_at DESC") for table in TABLES},
    "crm_leads_latest": ("crm_leads", ("lead_id",), "version DESC, exported_at DESC"),
}


def view_query(view, project, dataset):
    """Standard SQL of one of the VIEWS."""
    table, partition, order = VIEWS[view]
    return (f"SELECT * FROM `{project}.{dataset}.{table}` WHERE TRUE "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(partition)} ORDER BY {order}) = 1")
