import logging

from odoo import _, fields, models

from ..tools.waba import parse_preference, parse_template_update

_logger = logging.getLogger(__name__)

WABA_EVENT_TYPES = [
    ("user_preferences", "Marketing Preference"),
    ("template_status", "Template Status"),
    ("template_quality", "Template Quality"),
    ("template_category", "Template Category"),
]


class CrmInboxEvent(models.Model):
    """WhatsApp Business Account events besides messages: consent and template changes."""

    _inherit = "crm.inbox.event"

    event_type = fields.Selection(selection_add=WABA_EVENT_TYPES,
                                  ondelete={key: "cascade" for key, _label in WABA_EVENT_TYPES})

    def _process_whatsapp_user_preferences(self):
        """A customer stopped or resumed marketing messages in WhatsApp: update their consent."""
        preference = parse_preference(self.payload)
        account = self._whatsapp_account()
        Message = self.env["crm.whatsapp.message"]
        e164 = Message._normalise_wa_id(preference.wa_id)
        self._lock_customer(e164)
        partner = self.env["res.partner"]._whatsapp_find_or_create(
            {e164: self.payload.get("profile_name")}, account.company_id)[e164]
        stop = preference.value == "stop"
        consent = self.env["crm.whatsapp.consent"]._record(
            partner, account, "stopped" if stop else "allowed", "meta",
            preference.detail or (_("Stopped in WhatsApp") if stop else _("Resumed in WhatsApp")),
            at=preference.timestamp)
        lead = self.env["crm.lead"].search([("partner_id", "=", partner.id),
                                            ("whatsapp_account_id", "=", account.id)], order="id desc", limit=1)
        if consent and lead:
            lead._consent_post(consent)
        return {"whatsapp_account_id": account.id, "lead_id": lead.id}

    def _process_whatsapp_template_status(self):
        return self._apply_template_update()

    def _process_whatsapp_template_quality(self):
        return self._apply_template_update()

    def _process_whatsapp_template_category(self):
        return self._apply_template_update()

    def _apply_template_update(self):
        update = parse_template_update(self.payload)
        templates = self.env["crm.whatsapp.template"]._find_by_update(update)
        if not templates:
            # Not synced yet: the next template sync brings its current state.
            _logger.info("Template update for unknown template %s (%s) ignored", update.name, update.template_id)
            return {}
        templates._apply_meta_update(update)
        return {"whatsapp_account_id": templates[0].account_id.id}
