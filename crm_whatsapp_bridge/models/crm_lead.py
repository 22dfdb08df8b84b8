from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from .crm_whatsapp_message import MESSAGE_TYPES

# Message types that never open a lead: they belong to a conversation that already exists.
NO_LEAD_TYPES = ("reaction", "system", "unsupported")


class CrmLead(models.Model):
    _inherit = "crm.lead"

    whatsapp_account_id = fields.Many2one("crm.whatsapp.account", "WhatsApp Number", index="btree_not_null",
                                          tracking=True, readonly=True)
    whatsapp_message_ids = fields.One2many("crm.whatsapp.message", "lead_id", "WhatsApp Messages")
    whatsapp_message_count = fields.Integer("WhatsApp Message Count", compute="_compute_whatsapp_stats")
    whatsapp_last_message_date = fields.Datetime("Last WhatsApp Message", compute="_compute_whatsapp_stats")
    whatsapp_unread_count = fields.Integer(
        "Unread WhatsApp Messages", readonly=True, copy=False,
        help="Customer messages received since the salesperson last opened the lead.")
    whatsapp_ad_id = fields.Char("Ad ID", readonly=True,
                                 help="The Click-to-WhatsApp ad (or post) the conversation started from.")
    whatsapp_ad_source_type = fields.Char("Ad Source Type", readonly=True)
    whatsapp_ad_headline = fields.Char("Ad Headline", readonly=True)
    whatsapp_ad_url = fields.Char("Ad URL", readonly=True)
    whatsapp_ctwa_clid = fields.Char("Click-to-WhatsApp Click ID", readonly=True,
                                     help="Meta's click id, used to report conversions back to the ad.")

    @api.depends("whatsapp_message_ids.message_date")
    def _compute_whatsapp_stats(self):
        stats = {
            lead.id: (count, last)
            for lead, count, last in self.env["crm.whatsapp.message"]._read_group(
                [("lead_id", "in", self.ids)], ["lead_id"], ["__count", "message_date:max"])
        }
        for lead in self:
            lead.whatsapp_message_count, lead.whatsapp_last_message_date = stats.get(lead.id, (0, False))

    @api.model
    def _whatsapp_find_or_create(self, conversations):
        """The lead of each WhatsApp conversation of a batch, created where needed.

        :param list conversations: ``(partner, account, messages)`` triples, one per
            customer and receiving number, ``messages`` in arrival order
            (:class:`InboundMessage`)
        :return: ``{(partner id, account id): crm.lead}``, an empty record where the
            conversation has no lead (its messages are then recorded on the contact)

        A conversation gets the partner's open lead (preferring this number's). Without
        one, a conversation with a message that opens a lead (see
        :meth:`_whatsapp_opens_lead`) gets a new lead (all of the batch in one
        ``create``); one with only reactions, system or unsupported messages goes to the
        partner's latest lead, won or lost, or to none.
        """
        partners = self.env["res.partner"].union(*(partner for partner, _account, _messages in conversations))
        open_leads = self._whatsapp_open_leads(partners)
        result, to_create, latest_needed = {}, [], []
        for partner, account, messages in conversations:
            key = (partner.id, account.id)
            candidates = open_leads.filtered(
                lambda lead, p=partner, a=account: lead.partner_id == p and lead._crm_shared_with(a.company_id))
            lead = candidates.filtered(lambda lead, a=account: lead.whatsapp_account_id == a)[:1] or candidates[:1]
            opening = next((message for message in messages if self._whatsapp_opens_lead(message)), None)
            if lead:
                lead._whatsapp_update_from(account, messages)
                result[key] = lead
            elif opening:
                to_create.append((key, self._whatsapp_new_lead_values(partner, account, opening)))
            else:
                latest_needed.append((key, partner, account))
        # The first WhatsApp message, posted right after, is what tells the salesperson:
        # skip the separate "lead created" log and "you have been assigned" notice.
        source = self.env.ref("crm_whatsapp_bridge.utm_source_whatsapp")
        created = self.with_context(mail_create_nolog=True, mail_auto_subscribe_no_notify=True).create(
            [dict({"source_id": source.id}, **values) for _key, values in to_create])
        result.update(zip([key for key, _values in to_create], created, strict=True))
        for account, leads in created.grouped("whatsapp_account_id").items():
            leads._whatsapp_assign(account)
        latest = self._whatsapp_latest_leads(self.env["res.partner"].union(*(p for _k, p, _a in latest_needed)))
        for key, partner, account in latest_needed:
            result[key] = latest.filtered(
                lambda lead, p=partner, a=account: lead.partner_id == p
                and lead._crm_shared_with(a.company_id))[:1]
        return result

    def _crm_shared_with(self, company):
        """Whether this lead belongs to ``company`` or to no company (shared)."""
        # An empty company is no recordset equal to False: test it, do not compare it.
        return not self.company_id or self.company_id == company

    @api.model
    def _whatsapp_opens_lead(self, message):
        """Whether ``message`` may open a new lead: not a reaction, system or unsupported message."""
        return message.message_type not in NO_LEAD_TYPES and message.message_type in dict(MESSAGE_TYPES)

    @api.model
    def _whatsapp_open_leads(self, partners):
        """Open (not won) leads of ``partners``, newest first, in one query."""
        return self.search([
            ("partner_id", "in", partners.ids),
            "|", ("stage_id", "=", False), ("stage_id.is_won", "=", False),
        ], order="id desc") if partners else self.browse()

    @api.model
    def _whatsapp_latest_leads(self, partners):
        """All leads of ``partners`` (won, lost or open), newest first, in one query."""
        return self.with_context(active_test=False).search(
            [("partner_id", "in", partners.ids)], order="id desc") if partners else self.browse()

    def _whatsapp_update_from(self, account, messages):
        """Complete an existing lead from a conversation: its number, the ad it came from."""
        referral = next((message.referral for message in messages if message.referral), None)
        values = {}
        if referral and not self.whatsapp_ad_id:
            values.update(self._whatsapp_referral_values(referral))
        if not self.whatsapp_account_id:
            values["whatsapp_account_id"] = account.id
        if values:
            self.write(values)

    @api.model
    def _whatsapp_new_lead_values(self, partner, account, message):
        """Values of a new WhatsApp lead opened by ``message`` (extension point: assignment rules).

        The UTM source *WhatsApp* is added by the caller unless these values set another.
        """
        values = {
            "name": _("WhatsApp: %s", message.profile_name or partner.name),
            "partner_id": partner.id,
            "whatsapp_account_id": account.id,
            "user_id": account.user_id.id,
            "company_id": account.company_id.id,
        }
        if account.team_id:
            values["team_id"] = account.team_id.id
        if message.referral:
            values.update(self._whatsapp_referral_values(message.referral))
        return values

    @api.model
    def _whatsapp_referral_values(self, referral):
        """UTM campaign/medium and ad details of a Click-to-WhatsApp referral."""
        medium_xmlid = ("crm_whatsapp_bridge.utm_medium_whatsapp_post" if referral.source_type == "post"
                        else "crm_whatsapp_bridge.utm_medium_whatsapp_ad")
        campaign_name = referral.headline or _("Ad %s", referral.source_id)
        campaign = self.env["utm.mixin"]._find_or_create_record("utm.campaign", campaign_name)
        return {
            "medium_id": self.env.ref(medium_xmlid).id,
            "campaign_id": campaign.id,
            "whatsapp_ad_id": referral.source_id or False,
            "whatsapp_ad_source_type": referral.source_type or False,
            "whatsapp_ad_headline": referral.headline or False,
            "whatsapp_ad_url": referral.source_url or False,
            "whatsapp_ctwa_clid": referral.ctwa_clid or False,
        }

    def _notify_get_recipients(self, message, msg_vals, **kwargs):
        """A burst of WhatsApp messages makes one Discuss inbox notification, not one each.

        Users who have not read the inbox notification of an earlier WhatsApp message
        of this lead are not notified again: the chatter shows every message, and the
        toast still tells them the customer keeps writing.
        """
        recipients = super()._notify_get_recipients(message, msg_vals, **kwargs)
        if not self.env.context.get("crm_whatsapp_inbound") or len(self) != 1:
            return recipients
        inbox_partner_ids = tuple(r["id"] for r in recipients if r["notif"] == "inbox")
        if not inbox_partner_ids:
            return recipients
        self.env["mail.notification"].flush_model()
        self.env["crm.whatsapp.message"].flush_model(["mail_message_id"])
        self.env.cr.execute(SQL(
            """SELECT DISTINCT notif.res_partner_id
                 FROM mail_notification notif
                 JOIN mail_message msg ON msg.id = notif.mail_message_id
                 JOIN crm_whatsapp_message wa_msg ON wa_msg.mail_message_id = msg.id
                WHERE notif.res_partner_id IN %s AND notif.notification_type = 'inbox'
                  AND notif.is_read IS NOT TRUE AND msg.model = %s AND msg.res_id = %s
                  AND msg.id != %s""",
            inbox_partner_ids, self._name, self.id, message.id))
        still_unread = {row[0] for row in self.env.cr.fetchall()}
        return [r for r in recipients if not (r["notif"] == "inbox" and r["id"] in still_unread)]

    def _send_lead_toast(self, title, message):
        """Real-time toast with an *Open lead* button for the lead's salesperson (sent on commit)."""
        self.ensure_one()
        if self.user_id:
            self.user_id._bus_send("crm_whatsapp_bridge/new_message", {
                "title": title,
                "message": message,
                "lead_id": self.id,
                "lead_name": self.name,
            })

    def action_whatsapp_mark_seen(self):
        """The salesperson opened the lead: clear its unread badge and their WhatsApp inbox entries.

        Only the salesperson (anyone, while the lead is unassigned) clears the badge,
        so a manager glancing at the lead does not hide it from them.
        """
        leads = self.filtered(lambda lead: lead.whatsapp_unread_count and lead.user_id in (self.env.user, False))
        if not leads:
            return False
        leads.check_access("write")
        leads.sudo().whatsapp_unread_count = 0
        notifications = self.env["mail.notification"].search([
            ("res_partner_id", "=", self.env.user.partner_id.id),
            ("notification_type", "=", "inbox"),
            ("is_read", "=", False),
            ("mail_message_id", "in", leads.whatsapp_message_ids.mail_message_id.ids),
        ])
        notifications.write({"is_read": True, "read_date": fields.Datetime.now()})
        return True

    def action_whatsapp_compose(self):
        """Open the WhatsApp composer for this lead's customer."""
        self.ensure_one()
        if not self.partner_id:
            raise UserError(_("Set the lead's customer before sending a WhatsApp message."))
        return self.env["crm.whatsapp.composer"]._open_action("crm.lead", self.id)

    def action_open_whatsapp_messages(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("WhatsApp Messages"),
            "res_model": "crm.whatsapp.message",
            "view_mode": "list,form",
            "domain": [("lead_id", "=", self.id)],
        }
