from odoo import _, api, fields, models

from ..tools.leadgen import parse_lead
from .crm_inbox_event import InboxDeadLetter, InboxItem
from .crm_meta_page import MetaTokenError


class CrmInboxEvent(models.Model):
    _inherit = "crm.inbox.event"

    source = fields.Selection(selection_add=[("meta", "Meta Lead Ads")], ondelete={"meta": "cascade"})
    event_type = fields.Selection(selection_add=[("leadgen", "Lead Ads Lead")], ondelete={"leadgen": "cascade"})
    meta_page_id = fields.Many2one("crm.meta.page", "Meta Page", readonly=True, ondelete="set null")

    # ------------------------------------------------------------------
    # Lead Ads submissions, as a batch (see crm.inbox.event._process); the webhook's
    # events and the back-fill's share this path
    # ------------------------------------------------------------------

    def _batch_prefetch_meta_leadgen(self):
        """The pages and the leads already created for the chunk's submissions, in two queries."""
        pages = self.env["crm.meta.page"].search([("page_id", "in", self.mapped("channel_ref"))])
        existing = self.env["crm.lead"].with_context(active_test=False).search(
            [("meta_leadgen_id", "in", self.mapped("external_id"))])
        return {
            "pages": {page.page_id: page for page in pages},
            "existing": {lead.meta_leadgen_id: lead for lead in existing},
        }

    def _batch_prepare_meta_leadgen(self, shared):
        """Read the submission (the back-fill's copy, or the Graph API) and map its answers."""
        page = shared["pages"].get(self.channel_ref)
        if not page:
            raise InboxDeadLetter(_(
                "No active Meta page has the page ID %s. Add it under CRM > Configuration > WhatsApp & Meta > "
                "Meta Pages; its waiting leads are then processed again.", self.channel_ref))
        existing = shared["existing"].get(self.external_id)
        if existing:  # created by an earlier delivery or back-fill: nothing to do
            return InboxItem(self, done_values={"meta_page_id": page.id, "lead_id": existing.id})
        lead_object = (self.payload or {}).get("lead") or page._graph_call("get_lead", self.external_id)
        sub = self.env["crm.lead"]._meta_prepare(page, parse_lead(lead_object), lead_object, shared)
        # Same per-customer locks as WhatsApp: a number writing on WhatsApp and filling a
        # form at once cannot make two contacts.
        return InboxItem(self, customer=sub["email"] or sub["e164"] or "",
                         lock_keys=tuple(filter(None, (sub["e164"], sub["email"]))), data=sub)

    @api.model
    def _batch_apply_meta_leadgen(self, items):
        """Contacts and leads of a chunk's submissions (see crm.lead._meta_create_or_merge)."""
        leads = self.env["crm.lead"]._meta_create_or_merge([item.data for item in items])
        return {item.event.id: {"meta_page_id": item.data["page"].id, "lead_id": lead.id}
                for item, lead in zip(items, leads, strict=True)}

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
        answers_per_lead, recovered_per_user = {}, {}
        for event in leadgen:
            if (event.payload or {}).get("lead"):
                if event.lead_id.user_id:
                    recovered_per_user[event.lead_id.user_id] = recovered_per_user.get(event.lead_id.user_id, 0) + 1
            else:
                answers_per_lead[event.lead_id] = answers_per_lead.get(event.lead_id, 0) + 1
        for lead, count in answers_per_lead.items():
            name = lead.partner_id.name or lead.contact_name or lead.name
            text = (_("New Lead Ads answers from %s", name) if count == 1
                    else _("%(count)s new Lead Ads answers from %(name)s", count=count, name=name))
            lead._send_lead_toast(_("Lead Ads"), text)
        for user, count in recovered_per_user.items():
            user._bus_send("simple_notification", {
                "type": "info",
                "title": _("Lead Ads"),
                "message": _("%s Lead Ads answers recovered by the back-fill.", count),
            })
