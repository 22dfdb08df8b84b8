import secrets

from . import controllers, models, wizard
from .models.crm_lead_api import uninstall_commit_marker


def post_init_hook(env):
    """Give a fresh database its own webhook verify token, so nobody has to invent one."""
    params = env["ir.config_parameter"].sudo()
    if not params.get_param("crm_whatsapp_bridge.meta_verify_token"):
        params.set_param("crm_whatsapp_bridge.meta_verify_token", secrets.token_urlsafe(24))


def uninstall_hook(env):
    """Take the commit marker off the tables of crm and mail, and its trigger off the addon's messages."""
    uninstall_commit_marker(env.cr, ["crm_lead", "mail_tracking_value", "crm_whatsapp_message"])
