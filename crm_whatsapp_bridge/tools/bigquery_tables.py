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
    _field("whatsapp_marketing_consent", description="allowed, stopped or unknown; empty when never asked"),
    _field("whatsapp_consent_source", description="how the contact opted in (web_form, lead_ads, ...)"),
    _field("created_at", "TIMESTAMP"),
    _field("updated_at", "TIMESTAMP", "REQUIRED", "the version's time; one row per version"),
    _field("converted_at", "TIMESTAMP"),
    _field("won_at", "TIMESTAMP"),
    _field("lost_at", "TIMESTAMP"),
    _field("active", "BOOLEAN"),
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
]

# table -> (schema, day-partitioning field)
TABLES = {
    "crm_leads": (CRM_LEADS, "updated_at"),
    "crm_stage_history": (CRM_STAGE_HISTORY, "changed_at"),
    "whatsapp_messages": (WHATSAPP_MESSAGES, "message_at"),
}

LATEST_VIEW = "crm_leads_latest"


def latest_view_query(project, dataset):
    """Standard SQL of the view that keeps the newest exported version of each lead."""
    return (f"SELECT * FROM `{project}.{dataset}.crm_leads` "
            "WHERE TRUE QUALIFY ROW_NUMBER() OVER (PARTITION BY lead_id ORDER BY updated_at DESC) = 1")
