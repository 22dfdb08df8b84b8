from .models.crm_lead_api import uninstall_commit_marker


def uninstall_hook(env):
    """Remove the addon's settings, secrets included (Meta app secret, verify token, BigQuery key,
    GA4 API secret, Conversions API token): system parameters outlive the module otherwise.

    The tokens of numbers and pages go with their tables. Leads, contacts and their chatter
    belong to CRM and stay.
    """
    env["ir.config_parameter"].sudo().search([("key", "=like", "crm_whatsapp_bridge.%")]).unlink()
    # The commit marker lives on tables of crm and mail, which stay: take it off them.
    uninstall_commit_marker(env.cr, ["crm_lead", "mail_tracking_value", "crm_whatsapp_message"])
