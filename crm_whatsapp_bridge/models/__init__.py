from . import (
    crm_whatsapp_account,
    crm_inbox_event,
    crm_inbox_event_whatsapp,
    crm_whatsapp_message,
    crm_lead,
    res_partner,
    res_config_settings,
)
