from odoo import api, fields, models

GA4_LEAD_EVENTS = [
    ("working_lead", "Working lead (working_lead)"),
    ("qualify_lead", "Qualified lead (qualify_lead)"),
    ("close_convert_lead", "Converted lead (close_convert_lead)"),
    ("close_unconvert_lead", "Lead lost (close_unconvert_lead)"),
    ("disqualify_lead", "Disqualified lead (disqualify_lead)"),
]
# Meta's accepted event names for action_source "business_messaging" (tools.analytics.MESSAGING_EVENT_NAMES).
MESSAGING_EVENTS = [
    ("QualifiedLead", "Qualified lead (QualifiedLead)"),
    ("InitiateCheckout", "Checkout started (InitiateCheckout)"),
    ("AddToCart", "Added to cart (AddToCart)"),
    ("ViewContent", "Viewed content (ViewContent)"),
    ("LeadSubmitted", "Lead submitted (LeadSubmitted)"),
    ("Purchase", "Purchase (Purchase)"),
]
# Odoo's default pipeline New > Qualified > Proposition > Won, read as GA4's lead funnel.
DEFAULT_MAPPING = {
    "crm.stage_lead2": "qualify_lead",
    "crm.stage_lead3": "working_lead",
    "crm.stage_lead4": "close_convert_lead",
}
DEFAULT_MESSAGING_MAPPING = {"crm.stage_lead2": "QualifiedLead"}


class CrmStage(models.Model):
    _inherit = "crm.stage"

    ga4_event = fields.Selection(
        GA4_LEAD_EVENTS, "GA4 Event",
        help="Recommended GA4 lead event sent when a lead from WhatsApp, Lead Ads or a tracked web form "
             "reaches this stage. Empty: this stage sends nothing.")
    meta_event_name = fields.Char(
        "Meta CRM Event",
        help="Event name sent to Meta's Conversions API when a Lead Ads lead reaches this stage. Empty: the "
             "stage name, if the stage has a GA4 event; otherwise nothing is sent to Meta.")

    meta_messaging_event = fields.Selection(
        MESSAGING_EVENTS, "Click-to-WhatsApp Event",
        help="Conversions API for Business Messaging event sent when a lead whose conversation started from a "
             "Click-to-WhatsApp ad reaches this stage. Empty: Purchase (with the expected revenue) for a won "
             "stage, nothing for the others.")

    def _messaging_event_for_stage(self):
        """The business-messaging event name of this stage, or ``False``."""
        self.ensure_one()
        return self.meta_messaging_event or ("Purchase" if self.is_won else False)

    def _meta_event_for_stage(self):
        """The Conversions API event name of this stage, or ``False`` when the stage is not mapped."""
        self.ensure_one()
        if self.meta_event_name:
            return self.meta_event_name.strip()
        return self.name if self.ga4_event else False

    @api.model
    def _analytics_default_mapping(self):
        """Map Odoo's default stages to GA4's lead events (run once, at install)."""
        for xmlid, event in DEFAULT_MAPPING.items():
            stage = self.env.ref(xmlid, raise_if_not_found=False)
            if stage and not stage.ga4_event:
                stage.ga4_event = event
        for xmlid, event in DEFAULT_MESSAGING_MAPPING.items():
            stage = self.env.ref(xmlid, raise_if_not_found=False)
            if stage and not stage.meta_messaging_event:
                stage.meta_messaging_event = event
