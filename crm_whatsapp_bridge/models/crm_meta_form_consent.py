from odoo import _, fields, models


class CrmMetaForm(models.Model):
    _inherit = "crm.meta.form"

    consent_checkbox_key = fields.Char(
        "WhatsApp Consent Checkbox",
        help="The key of the form's custom disclaimer checkbox that asks for WhatsApp marketing consent. "
             "A lead who ticks it may receive marketing templates from the number below.")
    consent_account_id = fields.Many2one("crm.whatsapp.account", "Consent For Number", ondelete="set null")

    def _consent_apply(self, meta_lead, partner):
        """Record the WhatsApp marketing consent a submission gave through the form's checkbox."""
        self.ensure_one()
        if not (self.consent_checkbox_key and self.consent_account_id and partner):
            return
        checked = dict(meta_lead.disclaimers).get(self.consent_checkbox_key)
        if checked:
            self.env["crm.whatsapp.consent"]._record(
                partner, self.consent_account_id, "allowed", "lead_ads",
                _("Ticked the consent checkbox of the Lead Ads form %(form)s (lead %(lead)s).",
                  form=self.name, lead=meta_lead.leadgen_id),
                at=meta_lead.created_time or None)
