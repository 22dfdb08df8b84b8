from odoo import _, fields, models

from ..tools.leadgen import parse_lead
from .crm_inbox_event import InboxDeadLetter
from .crm_meta_page import MetaTokenError


class CrmInboxEvent(models.Model):
    _inherit = "crm.inbox.event"

    source = fields.Selection(selection_add=[("meta", "Meta Lead Ads")], ondelete={"meta": "cascade"})
    event_type = fields.Selection(selection_add=[("leadgen", "Lead Ads Lead")], ondelete={"leadgen": "cascade"})
    meta_page_id = fields.Many2one("crm.meta.page", "Meta Page", readonly=True, ondelete="set null")

    def _meta_page(self):
        page = self.env["crm.meta.page"].search([("page_id", "=", self.channel_ref)], limit=1)
        if not page:
            raise InboxDeadLetter(_(
                "No active Meta page has the page ID %s. Add it under CRM > Configuration > WhatsApp & Meta > "
                "Meta Pages; its waiting leads are then processed again.", self.channel_ref))
        return page

    def _process_meta_leadgen(self):
        """Read one Lead Ads lead (from the back-fill's copy or the Graph API) and make it a CRM lead."""
        page = self._meta_page()
        Lead = self.env["crm.lead"]
        existing = Lead.with_context(active_test=False).search([("meta_leadgen_id", "=", self.external_id)], limit=1)
        if existing:  # created by an earlier delivery or back-fill: nothing to do
            return {"meta_page_id": page.id, "lead_id": existing.id}
        lead_object = (self.payload or {}).get("lead") or page._graph_call("get_lead", self.external_id)
        lead = Lead._meta_create_or_merge(page, parse_lead(lead_object), lead_object)
        return {"meta_page_id": page.id, "lead_id": lead.id}

    def _record_failure(self, exc):
        """A refused page token: the event waits (dead) and the admins hear it once per page, not per event."""
        if not isinstance(exc, MetaTokenError):
            return super()._record_failure(exc)
        self.meta_page_id = exc.page
        super()._record_failure(exc)
        exc.page._flag_token_error(str(exc))
        return False

    def _after_chunk(self, done_events):
        """One toast per lead for webhook leads; one summary per salesperson for back-filled ones."""
        super()._after_chunk(done_events)
        leadgen = done_events.filtered(lambda e: e.source == "meta" and e.event_type == "leadgen" and e.lead_id)
        backfilled = leadgen.filtered(lambda e: (e.payload or {}).get("lead"))
        for lead in (leadgen - backfilled).lead_id:
            count = len(leadgen.filtered(lambda e, lead=lead: e.lead_id == lead))
            name = lead.partner_id.name or lead.contact_name or lead.name
            text = (_("New Lead Ads answers from %s", name) if count == 1
                    else _("%(count)s new Lead Ads answers from %(name)s", count=count, name=name))
            lead._send_lead_toast(_("Lead Ads"), text)
        for user in backfilled.lead_id.user_id:
            count = len(backfilled.filtered(lambda e, user=user: e.lead_id.user_id == user))
            user._bus_send("simple_notification", {
                "type": "info",
                "title": _("Lead Ads"),
                "message": _("%s Lead Ads answers recovered by the back-fill.", count),
            })
