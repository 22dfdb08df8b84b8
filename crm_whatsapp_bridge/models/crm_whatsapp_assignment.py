from odoo import _, api, fields, models

ASSIGNMENT_RULES = [
    ("fixed", "Fixed salesperson"),
    ("round_robin", "Round robin over the team"),
    ("least_open", "Fewest open WhatsApp leads"),
]


class CrmWhatsappAssignmentMixin(models.AbstractModel):
    """How new leads of a WhatsApp number or a Lead Ads page find their salesperson."""

    _name = "crm.whatsapp.assignment.mixin"
    _description = "WhatsApp / Lead Ads Assignment Rule"

    assignment_rule = fields.Selection(
        ASSIGNMENT_RULES, "Assignment", default="fixed", required=True,
        help="Fixed: the salesperson set here (or nobody). Round robin: the team's members in turn. "
             "Fewest open WhatsApp leads: the member with the least open leads that came from WhatsApp. "
             "Round robin and fewest open leads only consider members who are available for WhatsApp and "
             "working now (their working hours, else the company's); when nobody is, the lead waits "
             "unassigned in the team and goes to the first member who starts.")

    def _whatsapp_pick_user(self, lead):
        """The salesperson for ``lead`` under this rule, or an empty recordset when nobody can take it."""
        self.ensure_one()
        Users = self.env["res.users"]
        if self.assignment_rule == "fixed" or not self.team_id:
            return self.user_id if self.assignment_rule == "fixed" else Users
        team = self.team_id
        candidates = team.member_ids._whatsapp_assignable()
        if not candidates:
            return Users
        if self.assignment_rule == "round_robin":
            return team._whatsapp_take_turn(candidates)
        team._whatsapp_lock()
        open_counts = dict(self.env["crm.lead"].sudo()._read_group([
            ("user_id", "in", candidates.ids), ("whatsapp_account_id", "!=", False), ("id", "!=", lead.id),
            "|", ("stage_id", "=", False), ("stage_id.is_won", "=", False),
        ], ["user_id"], ["__count"]))
        return min(candidates, key=lambda user: (open_counts.get(user, 0), user.id))


class CrmWhatsappAccount(models.Model):
    _name = "crm.whatsapp.account"
    _inherit = ["crm.whatsapp.account", "crm.whatsapp.assignment.mixin"]


class CrmMetaPage(models.Model):
    _name = "crm.meta.page"
    _inherit = ["crm.meta.page", "crm.whatsapp.assignment.mixin"]


class CrmLead(models.Model):
    _inherit = "crm.lead"

    whatsapp_assign_pending = fields.Boolean(
        "Waiting for a Salesperson", readonly=True, copy=False, index="btree_not_null",
        help="Nobody of the team was working or available when this lead arrived: it goes to the "
             "first member who starts.")

    def _whatsapp_assign(self, rule_owner):
        """Assign new leads by the rule of the WhatsApp number or Lead Ads page they came from.

        Called on newly created leads. Each assignment is logged in the lead's chatter;
        leads nobody can take now are flagged and assigned by the waiting-leads cron.
        """
        logs = {}
        # The first message, posted next, tells the salesperson: no separate "assigned to you" notice.
        for lead in self.with_context(mail_auto_subscribe_no_notify=True):
            user = rule_owner._whatsapp_pick_user(lead)
            if user:
                logs[lead.id] = lead._whatsapp_set_salesperson(user, rule_owner)
            elif rule_owner.assignment_rule != "fixed" and rule_owner.team_id:
                lead.write({"user_id": False, "team_id": rule_owner.team_id.id, "whatsapp_assign_pending": True})
                logs[lead.id] = _(
                    "Nobody in %(team)s is working or available for WhatsApp now: the lead waits for the "
                    "first member who starts.", team=rule_owner.team_id.display_name)
        if logs:
            self.browse(logs)._message_log_batch(logs)

    def _whatsapp_set_salesperson(self, user, rule_owner):
        """Give this lead to ``user`` under the rule of ``rule_owner``; return the line for its chatter."""
        self.ensure_one()
        rule = dict(self.env["crm.whatsapp.assignment.mixin"]._fields["assignment_rule"]
                    ._description_selection(self.env))[rule_owner.assignment_rule]
        values = {"user_id": user, "whatsapp_assign_pending": False}
        if rule_owner.team_id:
            values["team_id"] = rule_owner.team_id
        # A lead created with the fixed rule's salesperson already has them: no second write.
        changes = {name: value.id if isinstance(value, models.BaseModel) else value
                   for name, value in values.items() if self[name] != value}
        if changes:
            self.write(changes)
        return _("Assigned to %(user)s (%(rule)s, %(origin)s).",
                 user=user.name, rule=rule, origin=rule_owner.display_name)

    @api.model
    def _cron_whatsapp_assign_waiting(self):
        """Give the leads waiting for a salesperson to the members who are working now."""
        waiting = self.search([("whatsapp_assign_pending", "=", True)], order="id")
        taken = waiting.filtered("user_id")
        taken.write({"whatsapp_assign_pending": False})
        for lead in waiting - taken:
            owner = lead.whatsapp_account_id or lead.meta_page_id
            user = owner._whatsapp_pick_user(lead) if owner else self.env["res.users"]
            if user:
                lead._message_log(body=lead._whatsapp_set_salesperson(user, owner))
            elif not owner:
                lead.whatsapp_assign_pending = False
