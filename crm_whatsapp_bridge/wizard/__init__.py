from . import crm_whatsapp_composer, crm_whatsapp_composer_consent
