from . import (
    crm_inbox_event,
    crm_inbox_event_whatsapp,
    crm_lead,
    crm_lead_api,
    crm_whatsapp_account,
    crm_whatsapp_message,
    crm_whatsapp_message_outbound,
    crm_whatsapp_template,
    ir_http,
    res_config_settings,
    res_partner,
)
