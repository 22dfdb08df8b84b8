from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError

from ..tools import outbound

TEMPLATE_STATUSES = [
    ("approved", "Approved"),
    ("pending", "Pending Review"),
    ("rejected", "Rejected"),
    ("paused", "Paused"),
    ("disabled", "Disabled"),
    ("in_appeal", "In Appeal"),
    ("limit_exceeded", "Limit Exceeded"),
    ("pending_deletion", "Pending Deletion"),
    ("deleted", "Deleted"),
    ("archived", "Archived"),
]
TEMPLATE_CATEGORIES = [("marketing", "Marketing"), ("utility", "Utility"), ("authentication", "Authentication")]


class CrmWhatsappTemplate(models.Model):
    """A message template of a WhatsApp Business Account, synchronised from Meta."""

    _name = "crm.whatsapp.template"
    _description = "WhatsApp Template"
    _order = "account_id, name, language"

    name = fields.Char(required=True, readonly=True)
    language = fields.Char(required=True, readonly=True)
    account_id = fields.Many2one("crm.whatsapp.account", "WhatsApp Number", required=True,
                                 readonly=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="account_id.company_id", store=True)
    meta_template_id = fields.Char("Meta Template ID", readonly=True)
    category = fields.Selection(TEMPLATE_CATEGORIES, readonly=True)
    status = fields.Selection(TEMPLATE_STATUSES, readonly=True, default="pending")
    parameter_format = fields.Selection([("POSITIONAL", "Numbered"), ("NAMED", "Named")],
                                        default="POSITIONAL", readonly=True)
    header = fields.Char(readonly=True)
    body = fields.Text(readonly=True)
    footer = fields.Char(readonly=True)
    buttons = fields.Text(readonly=True, help="The template's button labels, one per line.")
    unsupported_reason = fields.Char(
        "Cannot Be Sent Because", readonly=True,
        help="Parts of the template this app cannot fill in (media headers, header or URL variables).")
    variable_ids = fields.One2many("crm.whatsapp.template.variable", "template_id", "Variables")
    can_send = fields.Boolean(compute="_compute_can_send", search="_search_can_send")
    active = fields.Boolean(default=True)

    _sql_constraints = [
        ("name_language_uniq", "unique(account_id, name, language)",
         "A template exists once per WhatsApp number and language."),
    ]

    @api.depends("status", "unsupported_reason")
    def _compute_can_send(self):
        for template in self:
            template.can_send = template.status == "approved" and not template.unsupported_reason

    def _search_can_send(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(_("Unsupported search on templates that can be sent."))
        domain = [("status", "=", "approved"), ("unsupported_reason", "=", False)]
        return domain if (operator == "=") == value else ["!", *domain]

    @api.depends("name", "language")
    def _compute_display_name(self):
        for template in self:
            template.display_name = f"{template.name} ({template.language})"

    def _values_for(self, lead, partner):
        """Placeholder key -> text for a lead (or, without one, a contact)."""
        self.ensure_one()
        by_key = {variable.key: variable for variable in self.variable_ids}
        return {key: by_key[key]._value_for(lead, partner) if key in by_key else ""
                for key in outbound.placeholders(self.body)}

    def _check_send_right(self):
        """Marketing templates are charged by Meta: sending one needs its own right."""
        marketing = self.filtered(lambda template: template.category == "marketing")
        if marketing and not self.env.user.has_group("crm_whatsapp_bridge.group_whatsapp_marketing"):
            raise AccessError(_("Sending the marketing template %s needs the right \"WhatsApp: send marketing "
                                "templates\" (Sales Managers have it). Ask a Sales Manager.",
                                marketing[0].display_name))

    def _render(self, values):
        self.ensure_one()
        return outbound.render(self.body, values)

    @api.model
    def _sync_account(self, account):
        """Create or update ``account``'s templates from Meta; archive those Meta no longer has.

        Returns ``(created, updated, archived)``.
        """
        definitions = [outbound.parse_template(raw)
                       for raw in account._graph_client().message_templates(account.waba_id)]
        existing = {(t.name, t.language): t
                    for t in self.with_context(active_test=False).search([("account_id", "=", account.id)])}
        created = updated = 0
        seen = self.browse()
        for definition in definitions:
            values = {
                "meta_template_id": definition.template_id,
                "category": definition.category.lower() if definition.category.lower() in dict(
                    TEMPLATE_CATEGORIES) else False,
                "status": definition.status.lower() if definition.status.lower() in dict(
                    TEMPLATE_STATUSES) else "pending",
                "parameter_format": "NAMED" if definition.parameter_format == "NAMED" else "POSITIONAL",
                "header": definition.header or False,
                "body": definition.body,
                "footer": definition.footer or False,
                "buttons": "\n".join(definition.buttons) or False,
                **self._meta_definition_values(definition),
                "unsupported_reason": definition.unsupported_reason or False,
                "active": True,
            }
            template = existing.get((definition.name, definition.language))
            if template:
                template.write(values)
                updated += 1
            else:
                template = self.create(dict(values, name=definition.name, language=definition.language,
                                            account_id=account.id))
                created += 1
            template._ensure_variables()
            seen |= template
        stale = (self.browse([t.id for t in existing.values()]) - seen).filtered("active")
        stale.active = False
        return created, updated, len(stale)

    def _ensure_variables(self):
        """One mapping line per placeholder; the first defaults to the contact's name."""
        for template in self:
            keys = outbound.placeholders(template.body)
            known = set(template.variable_ids.mapped("key"))
            template.variable_ids.filtered(lambda v, keys=keys: v.key not in keys).unlink()
            template.variable_ids = [
                (0, 0, {"key": key, "sequence": index,
                        "field_path": "partner_id.name" if index == 0 else False})
                for index, key in enumerate(keys) if key not in known
            ]


class CrmWhatsappTemplateVariable(models.Model):
    """Where the value of one template placeholder comes from."""

    _name = "crm.whatsapp.template.variable"
    _description = "WhatsApp Template Variable"
    _order = "template_id, sequence, id"

    template_id = fields.Many2one("crm.whatsapp.template", required=True, ondelete="cascade", index=True)
    sequence = fields.Integer()
    key = fields.Char("Placeholder", required=True, readonly=True,
                      help="The placeholder of the template body: 1 stands for {{1}}.")
    field_path = fields.Char(
        "Lead Field",
        help="A field of the lead, dotted for related records, e.g. partner_id.name, user_id.name, "
             "expected_revenue. Left empty, the fixed value is used.")
    fixed_value = fields.Char(help="Used when the lead field is empty or not set.")

    @api.constrains("field_path")
    def _check_field_path(self):
        Lead = self.env["crm.lead"]
        for variable in self.filtered("field_path"):
            model = Lead
            for name in variable.field_path.split("."):
                field = model._fields.get(name)
                if field is None:
                    raise ValidationError(_("%(path)s is not a field of leads (%(name)s is unknown).",
                                            path=variable.field_path, name=name))
                model = self.env[field.comodel_name] if field.relational else None
                if model is None and name != variable.field_path.split(".")[-1]:
                    raise ValidationError(_("%s goes through a field that is not a relation.",
                                            variable.field_path))

    def _value_for(self, lead, partner):
        """The text of this placeholder for ``lead`` (``partner`` stands in for partner_id)."""
        self.ensure_one()
        if self.field_path:
            path = self.field_path
            record = lead
            if not lead and path.startswith("partner_id."):
                record, path = partner, path.removeprefix("partner_id.")
            if record:
                value = record.mapped(path)
                if isinstance(value, models.BaseModel):
                    value = value.mapped("display_name")
                text = ", ".join(str(v) for v in value if v not in (False, None, ""))
                if text:
                    return text
        return self.fixed_value or ""
