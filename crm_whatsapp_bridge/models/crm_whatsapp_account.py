from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..tools.graph_client import DEFAULT_GRAPH_URL, GraphApiError, GraphClient

GRAPH_URL_PARAM = "crm_whatsapp_bridge.graph_url"


class CrmWhatsappAccount(models.Model):
    """A WhatsApp Business phone number connected through the Cloud API."""

    _name = "crm.whatsapp.account"
    _description = "WhatsApp Number"
    _inherit = ["mail.thread"]
    _order = "name, id"
    _check_company_auto = True

    name = fields.Char(required=True, tracking=True)
    phone_number_id = fields.Char(
        "Phone Number ID", required=True, tracking=True, index=True,
        help="The phone number's ID shown in Meta's WhatsApp Manager (API Setup).")
    display_phone_number = fields.Char("Phone Number", help="The number customers write to.")
    waba_id = fields.Char("WhatsApp Business Account ID", tracking=True)
    access_token = fields.Char(
        groups="base.group_system", copy=False,
        help="A permanent System User token with whatsapp_business_messaging permission.")
    team_id = fields.Many2one("crm.team", "Sales Team", tracking=True, check_company=True,
                              help="New leads from this number go to this team.")
    user_id = fields.Many2one(
        "res.users", "Default Salesperson", tracking=True, domain=[("share", "=", False)], check_company=True,
        help="New leads from this number are assigned to this salesperson. Leave empty to leave them "
             "unassigned in the sales team, for its rule-based assignment (CRM settings) or a manager.")
    company_id = fields.Many2one("res.company", default=lambda self: self.env.company, required=True)
    active = fields.Boolean(default=True)
    lead_count = fields.Integer(compute="_compute_lead_count")
    template_ids = fields.One2many("crm.whatsapp.template", "account_id", "Templates")
    template_count = fields.Integer(compute="_compute_template_count")

    _sql_constraints = [
        ("phone_number_id_uniq", "unique(phone_number_id)",
         "This WhatsApp phone number ID is already connected."),
    ]

    def _compute_lead_count(self):
        counts = dict(self.env["crm.lead"]._read_group(
            [("whatsapp_account_id", "in", self.ids)], ["whatsapp_account_id"], ["__count"]))
        for account in self:
            account.lead_count = counts.get(account, 0)

    @api.depends("template_ids")
    def _compute_template_count(self):
        counts = dict(self.env["crm.whatsapp.template"]._read_group(
            [("account_id", "in", self.ids)], ["account_id"], ["__count"]))
        for account in self:
            account.template_count = counts.get(account, 0)

    def action_sync_templates(self):
        """Fetch the message templates of each number's WABA from Meta."""
        totals = [0, 0, 0]
        for account in self:
            if not account.waba_id:
                raise UserError(_("Set the WhatsApp Business Account ID of %s to sync its templates.", account.name))
            try:
                counts = self.env["crm.whatsapp.template"]._sync_account(account)
            except GraphApiError as exc:
                help_text = self.env["crm.whatsapp.message"]._explain_error(exc.code) if exc.code is not None else False
                raise UserError(_("Meta refused to list the templates of %(number)s: %(error)s",
                                  number=account.name, error=help_text or exc)) from exc
            totals = [total + count for total, count in zip(totals, counts, strict=True)]
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "title": _("WhatsApp templates synchronised"),
                "message": _("%(created)s new, %(updated)s updated, %(archived)s archived.",
                             created=totals[0], updated=totals[1], archived=totals[2]),
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    def action_open_templates(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Templates of %s", self.name),
            "res_model": "crm.whatsapp.template",
            "view_mode": "list,form",
            "domain": [("account_id", "=", self.id)],
            "context": {"default_account_id": self.id},
        }

    def action_open_leads(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("crm.crm_lead_all_leads")
        action.update({
            "domain": [("whatsapp_account_id", "=", self.id)],
            "context": {"active_test": False},
            "name": _("Leads from %s", self.name),
        })
        return action

    @api.model
    def _graph_base_url(self):
        return self.env["ir.config_parameter"].sudo().get_param(GRAPH_URL_PARAM) or DEFAULT_GRAPH_URL

    def _graph_client(self):
        """Graph API client authenticated with this number's token."""
        self.ensure_one()
        return GraphClient(self.sudo().access_token or "", self._graph_base_url())
