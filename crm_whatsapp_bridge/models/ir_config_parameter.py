from odoo import _, api, models
from odoo.exceptions import ValidationError

from ..tools.urls import base_url_problem

# System parameters holding the base URL of an API the addon sends secrets to.
BASE_URL_PARAMS = frozenset({
    "crm_whatsapp_bridge.graph_url",
    "crm_whatsapp_bridge.ga4_url",
    "crm_whatsapp_bridge.bigquery_url",
    "crm_whatsapp_bridge.oauth_token_url",
})


class IrConfigParameter(models.Model):
    """Base URLs are checked when they are saved, from Settings or from the technical menu:
    a URL without a scheme or host never reaches ``requests`` (whose errors quote the URL)."""

    _inherit = "ir.config_parameter"

    @api.model
    def _crm_base_url_problems(self):
        return {
            "invalid": _("it is not a valid URL"),
            "scheme": _("it must start with https://"),
            "host": _("it has no host name"),
            "cleartext": _("it must use https:// (http:// is only allowed for this machine)"),
            "credentials": _("it must not contain a user name or password"),
            "query": _("it must not contain a query (?...) or fragment (#...)"),
        }

    @api.constrains("key", "value")
    def _check_crm_base_url(self):
        for param in self.filtered(lambda param: param.key in BASE_URL_PARAMS and param.value):
            problem = base_url_problem(param.value)
            if problem:
                # The URL itself is not repeated: whatever was pasted into it stays out of messages and logs.
                raise ValidationError(_("The URL of %(key)s cannot be used: %(problem)s.",
                                        key=param.key, problem=self._crm_base_url_problems()[problem]))
