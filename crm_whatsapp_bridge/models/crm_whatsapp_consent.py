import logging

from odoo import _, api, fields, models
from odoo.exceptions import UserError

_logger = logging.getLogger(__name__)

MARKETING_STATES = [("unknown", "Not Given"), ("allowed", "Allowed"), ("stopped", "Stopped")]
CONSENT_SOURCES = [
    ("web_form", "Web Form"),
    ("lead_ads", "Lead Ads Form"),
    ("conversation", "Customer Started the Conversation"),
    ("keyword", "Keyword Sent by the Customer"),
    ("meta", "WhatsApp Setting (Meta)"),
    ("blacklist", "Phone Blacklist"),
    ("manual", "Manual"),
]
# Context key set while the consent and the phone blacklist update each other (no ping-pong).
SYNC_CONTEXT = "crm_whatsapp_consent_sync"


class CrmWhatsappConsent(models.Model):
    """Whether a contact accepts marketing messages from one WhatsApp number, with its history."""

    _name = "crm.whatsapp.consent"
    _description = "WhatsApp Marketing Consent"
    _order = "changed_at desc, id desc"
    _rec_name = "partner_id"

    partner_id = fields.Many2one("res.partner", "Contact", required=True, readonly=True, index=True,
                                 ondelete="cascade")
    account_id = fields.Many2one("crm.whatsapp.account", "WhatsApp Number", required=True, readonly=True,
                                 index=True, ondelete="cascade")
    company_id = fields.Many2one(related="account_id.company_id", store=True)
    phone = fields.Char("Customer Number", readonly=True, index=True, help="The contact's number in E.164.")
    marketing = fields.Selection(MARKETING_STATES, "Marketing Messages", required=True, readonly=True,
                                 default="unknown")
    source = fields.Selection(CONSENT_SOURCES, "Last Change By", readonly=True)
    opt_in_source = fields.Selection(CONSENT_SOURCES, "Opt-in Source", readonly=True,
                                     help="How the contact agreed to marketing messages.")
    changed_at = fields.Datetime("Changed On", readonly=True)
    changed_by_id = fields.Many2one("res.users", "Changed By", readonly=True)
    reason = fields.Char(readonly=True)
    history_ids = fields.One2many("crm.whatsapp.consent.history", "consent_id", "History", readonly=True)

    _sql_constraints = [
        ("partner_account_uniq", "unique(partner_id, account_id)",
         "A contact has one consent record per WhatsApp number."),
    ]

    @api.depends("partner_id", "account_id")
    def _compute_display_name(self):
        for consent in self:
            consent.display_name = f"{consent.partner_id.display_name} / {consent.account_id.display_name}"

    # ------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------

    @api.model
    def _get(self, partner, account):
        return self.sudo().search([("partner_id", "=", partner.id), ("account_id", "=", account.id)], limit=1)

    @api.model
    def _pairs_with_consent(self, partners, accounts):
        """The ``(partner, account)`` pairs of ``partners`` and ``accounts`` that have a consent record."""
        return {(consent.partner_id, consent.account_id) for consent in self.sudo().search(
            [("partner_id", "in", partners.ids), ("account_id", "in", accounts.ids)])}

    @api.model
    def _is_blacklisted(self, partner):
        number = partner._whatsapp_recipient()
        return bool(number) and bool(self.env["phone.blacklist"].sudo().search_count([("number", "=", number)]))

    @api.model
    def _marketing_refusal(self, partner, account):
        """Why ``account`` may not send marketing messages to ``partner`` (False when it may)."""
        consent = self._get(partner, account)
        if consent.marketing == "stopped":
            return _("%(contact)s stopped marketing messages from %(number)s on %(date)s (%(reason)s).",
                     contact=partner.display_name, number=account.display_name,
                     date=fields.Datetime.to_string(consent.changed_at), reason=consent.reason or "-")
        if self._is_blacklisted(partner):
            return _("%s is on the phone blacklist: no marketing messages.", partner.display_name)
        if consent.marketing != "allowed":
            return _("%(contact)s has not agreed to marketing messages from %(number)s.",
                     contact=partner.display_name, number=account.display_name)
        return False

    # ------------------------------------------------------------------
    # Changing (every change leaves a history line)
    # ------------------------------------------------------------------

    @api.model
    def _record(self, partner, account, marketing, source, reason, at=None, message=None):
        """Set the marketing consent of ``partner`` on ``account``; return the consent if it changed.

        ``at`` is when the customer or Meta made the change: a change older than the
        current state (a late webhook) is kept in the history but changes nothing.
        """
        consent = self._get(partner, account)
        if not consent:
            consent = self.sudo().create({"partner_id": partner.id, "account_id": account.id,
                                          "phone": partner._whatsapp_recipient()})
        at = at or fields.Datetime.now()
        late = bool(consent.changed_at and at < consent.changed_at)
        changed = not late and consent.marketing != marketing
        self.env["crm.whatsapp.consent.history"].sudo().create({
            "consent_id": consent.id,
            "date": at,
            "previous": consent.marketing,
            "marketing": marketing,
            "applied": changed,
            "source": source,
            "user_id": self.env.user.id,
            "reason": reason,
            "message_id": message.id if message else False,
        })
        if not changed:
            return self.browse()
        values = {"marketing": marketing, "source": source, "changed_at": at, "changed_by_id": self.env.user.id,
                  "reason": reason, "phone": partner._whatsapp_recipient() or consent.phone}
        if marketing == "allowed":
            values["opt_in_source"] = source
        consent.write(values)
        consent._update_leads()
        if not self.env.context.get(SYNC_CONTEXT):
            consent._sync_blacklist(reason)
        return consent

    @api.model
    def _record_conversations_started(self, messages):
        """Open the consent of customers who wrote first, one per message of ``messages``
        (inbound, of ``(contact, number)`` pairs without a consent): allowed, or stopped
        when the number is on the phone blacklist, which then already agrees."""
        if not messages:
            return self.browse()
        numbers = [message.partner_id._whatsapp_recipient() for message in messages]
        blacklisted = set(self.env["phone.blacklist"].sudo().search(
            [("number", "in", [number for number in numbers if number])]).mapped("number"))
        values, history = [], []
        for message, number in zip(messages, numbers, strict=True):
            stopped = bool(number) and number in blacklisted
            state = {
                "marketing": "stopped" if stopped else "allowed",
                "source": "blacklist" if stopped else "conversation",
                "reason": _("The number is on the phone blacklist.") if stopped
                else _("The customer wrote first on WhatsApp."),
            }
            values.append(dict(state, partner_id=message.partner_id.id, account_id=message.account_id.id,
                               phone=number, changed_at=message.message_date, changed_by_id=self.env.user.id,
                               opt_in_source=False if stopped else "conversation"))
            history.append(dict(state, date=message.message_date, previous="unknown", applied=True,
                                user_id=self.env.user.id, message_id=message.id))
        consents = self.sudo().create(values)
        self.env["crm.whatsapp.consent.history"].sudo().create([
            dict(entry, consent_id=consent.id) for entry, consent in zip(history, consents, strict=True)])
        consents._update_leads()
        return consents

    def _update_leads(self):
        """Show the consent on the contact's leads of this number (or of no number).

        Writing the leads also dates the change on them, so the BigQuery export and
        ``GET /crm/leads`` (which follow lead changes) carry the new state.
        """
        leads = self.env["crm.lead"].sudo().with_context(active_test=False).search(
            [("partner_id", "in", self.partner_id.ids)])
        state_of = {}  # the last consent of a lead's contact and number wins
        for consent in self:
            for lead in leads.filtered(lambda lead, c=consent: lead.partner_id == c.partner_id and (
                    not lead.whatsapp_account_id or lead.whatsapp_account_id == c.account_id)):
                state_of[lead] = consent.marketing
        for state in set(state_of.values()):
            leads.browse(lead.id for lead, lead_state in state_of.items() if lead_state == state).write(
                {"whatsapp_marketing_consent": state})

    def _sync_blacklist(self, reason):
        """Mirror the consent on Odoo's phone blacklist: stopped adds the number, allowed removes it."""
        Blacklist = self.env["phone.blacklist"].sudo().with_context(**{SYNC_CONTEXT: True})
        for consent in self.filtered("phone"):
            # The blacklist only holds numbers phonenumbers knows as valid.
            number = self.env.user._phone_format(number=consent.phone, force_format="E164")
            if not number:
                _logger.info("Consent %s: %s cannot go on the phone blacklist (not a valid number)",
                             consent.id, consent.phone)
                continue
            blacklisted = bool(Blacklist.search_count([("number", "=", number)]))
            if consent.marketing == "stopped" and not blacklisted:
                Blacklist._add([number], message=_("WhatsApp marketing stopped: %s", reason))
            elif consent.marketing == "allowed" and blacklisted:
                Blacklist._remove([number], message=_("WhatsApp marketing allowed: %s", reason))

    @api.model
    def _sync_from_blacklist(self, numbers, blacklisted):
        """The phone blacklist changed for ``numbers``: update every consent of those numbers."""
        if not numbers:
            return
        partners = self.env["res.partner"].sudo().search(
            ["|", ("whatsapp_number", "in", list(numbers)), ("phone_sanitized", "in", list(numbers))])
        accounts = self.env["crm.whatsapp.account"].sudo().search([])
        # Every consent the loop below looks at, read once: those of the numbers and of their contacts.
        existing = {(consent.partner_id, consent.account_id): consent for consent in self.sudo().search(
            ["|", ("phone", "in", list(numbers)), ("partner_id", "in", partners.ids)])}
        pairs = {pair for pair, consent in existing.items() if consent.phone in numbers}
        if blacklisted:
            # A blacklisted number stops marketing from every number, even those it never wrote to.
            pairs |= {(partner, account) for partner in partners for account in accounts}
            marketing, reason = "stopped", _("Added to the phone blacklist by %s.", self.env.user.name)
        else:
            marketing, reason = "allowed", _("Removed from the phone blacklist by %s.", self.env.user.name)
            pairs = {pair for pair in pairs if existing[pair].marketing == "stopped"}
        Consent = self.with_context(**{SYNC_CONTEXT: True})
        for partner, account in pairs:
            if existing.get((partner, account), self.browse()).marketing == marketing:
                continue
            Consent._record(partner, account, marketing, "blacklist", reason)

    def action_change(self):
        """Open the dialog where a person with the right records a consent change."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Change Marketing Consent"),
            "res_model": "crm.whatsapp.consent.change",
            "view_mode": "form",
            "target": "new",
            "context": {"default_partner_id": self.partner_id.id, "default_account_id": self.account_id.id},
        }


class CrmWhatsappConsentHistory(models.Model):
    """One change (or refused late change) of a consent: the ledger, never edited."""

    _name = "crm.whatsapp.consent.history"
    _description = "WhatsApp Consent History"
    _order = "date desc, id desc"

    consent_id = fields.Many2one("crm.whatsapp.consent", required=True, readonly=True, index=True,
                                 ondelete="cascade")
    partner_id = fields.Many2one(related="consent_id.partner_id", store=True, index=True)
    account_id = fields.Many2one(related="consent_id.account_id", store=True)
    company_id = fields.Many2one(related="consent_id.company_id", store=True)
    date = fields.Datetime(required=True, readonly=True)
    previous = fields.Selection(MARKETING_STATES, "Before", readonly=True)
    marketing = fields.Selection(MARKETING_STATES, "After", required=True, readonly=True)
    applied = fields.Boolean(readonly=True, help="Unticked when a newer change already happened (late event).")
    source = fields.Selection(CONSENT_SOURCES, "Changed By", required=True, readonly=True)
    user_id = fields.Many2one("res.users", "User", readonly=True)
    reason = fields.Char(readonly=True)
    message_id = fields.Many2one("crm.whatsapp.message", "WhatsApp Message", readonly=True, ondelete="set null",
                                 index="btree_not_null")

    def write(self, vals):
        raise UserError(_("The consent history cannot be changed."))


class CrmWhatsappConsentChange(models.TransientModel):
    """A salesperson manager (or admin) records a consent the customer gave or withdrew."""

    _name = "crm.whatsapp.consent.change"
    _description = "Change WhatsApp Marketing Consent"

    partner_id = fields.Many2one("res.partner", "Contact", required=True)
    account_id = fields.Many2one("crm.whatsapp.account", "WhatsApp Number", required=True)
    marketing = fields.Selection([("allowed", "Allowed"), ("stopped", "Stopped")], "Marketing Messages",
                                 required=True, default="allowed")
    source = fields.Selection([("manual", "Manual"), ("web_form", "Web Form")], "Consent Given Through",
                              required=True, default="manual")
    reason = fields.Char(required=True, help="How and when the customer said so (kept in the history).")

    def action_apply(self):
        self.ensure_one()
        if not self.env.user.has_group("sales_team.group_sale_manager"):
            raise UserError(_("Only sales managers can change a customer's marketing consent."))
        self.env["crm.whatsapp.consent"]._record(
            self.partner_id, self.account_id, self.marketing,
            self.source if self.marketing == "allowed" else "manual", self.reason)
        return {"type": "ir.actions.act_window_close"}


class CrmLead(models.Model):
    _inherit = "crm.lead"

    whatsapp_marketing_consent = fields.Selection(
        MARKETING_STATES, "WhatsApp Marketing", readonly=True,
        help="The contact's consent to marketing messages from the lead's WhatsApp number.")

    def _consent_post(self, consent):
        """Note a consent change in the lead's chatter."""
        sources = dict(consent._fields["source"]._description_selection(self.env))
        body = (_("Marketing messages stopped (%(origin)s): %(reason)s", origin=sources[consent.source],
                  reason=consent.reason) if consent.marketing == "stopped"
                else _("Marketing messages allowed (%(origin)s): %(reason)s", origin=sources[consent.source],
                       reason=consent.reason))
        for lead in self:
            lead.message_post(body=body, message_type="notification", subtype_xmlid="mail.mt_note")


class ResPartner(models.Model):
    _inherit = "res.partner"

    whatsapp_consent_ids = fields.One2many("crm.whatsapp.consent", "partner_id", "WhatsApp Consents")
    whatsapp_consent_count = fields.Integer(compute="_compute_whatsapp_consent_count")

    def _compute_whatsapp_consent_count(self):
        counts = dict(self.env["crm.whatsapp.consent"]._read_group(
            [("partner_id", "in", self.ids)], ["partner_id"], ["__count"]))
        for partner in self:
            partner.whatsapp_consent_count = counts.get(partner, 0)

    def action_open_whatsapp_consents(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("crm_whatsapp_bridge.crm_whatsapp_consent_action")
        action["domain"] = [("partner_id", "=", self.id)]
        return action
