import secrets

from . import controllers, models, wizard
from .hooks import uninstall_hook  # noqa: F401 - named in the manifest


def post_init_hook(env):
    """Give a fresh database its own webhook verify token, so nobody has to invent one."""
    params = env["ir.config_parameter"].sudo()
    if not params.get_param("crm_whatsapp_bridge.meta_verify_token"):
        params.set_param("crm_whatsapp_bridge.meta_verify_token", secrets.token_urlsafe(24))

