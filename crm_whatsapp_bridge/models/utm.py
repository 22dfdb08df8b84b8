from odoo import _, api, models
from odoo.exceptions import UserError

from .crm_lead_analytics import FUNNEL_SOURCE_XMLIDS

# Sources the addon's code looks up by XML id (its leads' sources): deleting one would break lead creation.
REQUIRED_SOURCES = FUNNEL_SOURCE_XMLIDS


class UtmSource(models.Model):
    _inherit = "utm.source"

    @api.ondelete(at_uninstall=False)
    def _unlink_except_crm_whatsapp_bridge_source(self):
        for xmlid in REQUIRED_SOURCES:
            source = self.env.ref(xmlid, raise_if_not_found=False)
            if source and source in self:
                raise UserError(_("The UTM source '%s' cannot be deleted: the WhatsApp & Meta Lead Ads "
                                  "bridge gives it to the leads it creates.", source.name))


class UtmMedium(models.Model):
    _inherit = "utm.medium"

    @property
    def SELF_REQUIRED_UTM_MEDIUMS_REF(self):
        return super().SELF_REQUIRED_UTM_MEDIUMS_REF | {
            "crm_whatsapp_bridge.utm_medium_whatsapp_ad": "Click-to-WhatsApp Ad",
            "crm_whatsapp_bridge.utm_medium_whatsapp_post": "Click-to-WhatsApp Post",
            "crm_whatsapp_bridge.utm_medium_lead_ad": "Lead Ad",
            "crm_whatsapp_bridge.utm_medium_lead_form_organic": "Organic Lead Form",
        }
