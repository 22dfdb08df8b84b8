import logging
from datetime import timedelta

from odoo import _, api, fields, models

from .crm_inbox_event import notify_admins
from .crm_whatsapp_template import TEMPLATE_CATEGORIES, TEMPLATE_STATUSES

_logger = logging.getLogger(__name__)

QUALITY_SCORES = [("green", "High (Green)"), ("yellow", "Medium (Yellow)"), ("red", "Low (Red)"),
                  ("unknown", "Unknown")]
HEADER_FORMATS = [("text", "Text"), ("image", "Image"), ("video", "Video"), ("document", "Document")]
# Meta's template status events -> our status (FLAGGED keeps the status: it only warns).
STATUS_EVENTS = {"REINSTATED": "approved", "FLAGGED": None}
# Admins hear about a paused or disabled template when it was used this recently.
RECENT_USE = timedelta(days=30)


class CrmWhatsappTemplate(models.Model):
    _inherit = "crm.whatsapp.template"

    quality = fields.Selection(QUALITY_SCORES, "Quality Rating", readonly=True, default="unknown")
    status_reason = fields.Char("Meta's Reason", readonly=True,
                                help="Why Meta rejected, paused, flagged or disabled the template.")
    status_at = fields.Datetime("Status From", readonly=True, help="When Meta sent the status in force.")
    quality_at = fields.Datetime("Quality From", readonly=True)
    upcoming_category = fields.Selection(TEMPLATE_CATEGORIES, readonly=True,
                                         help="The category Meta announced it will switch this template to.")
    upcoming_category_at = fields.Datetime("Category Changes On", readonly=True)
    header_format = fields.Selection(HEADER_FORMATS, readonly=True, default="text")
    url_button_index = fields.Integer(readonly=True, default=-1,
                                      help="Position of the button whose URL ends with a variable (-1: none).")
    url_button_url = fields.Char("Button URL", readonly=True)
    send_block_reason = fields.Char("Cannot Be Sent", compute="_compute_send_block_reason")

    @api.depends("status", "unsupported_reason", "quality")
    def _compute_can_send(self):
        super()._compute_can_send()
        for template in self.filtered(lambda t: t.quality == "red"):
            template.can_send = False

    def _search_can_send(self, operator, value):
        domain = super()._search_can_send(operator, value)
        if (operator == "=") == value:
            return [*domain, ("quality", "!=", "red")]
        return ["|", ("quality", "=", "red"), *domain]

    @api.depends("status", "status_reason", "unsupported_reason", "quality")
    def _compute_send_block_reason(self):
        statuses = dict(TEMPLATE_STATUSES)
        for template in self:
            reason = False
            detail = template.status_reason or ""
            if template.status == "paused":
                reason = _("Meta paused it because customers reported or ignored it. %s", detail)
            elif template.status == "disabled":
                reason = _("Meta disabled it after repeated low quality. %s", detail)
            elif template.status == "rejected":
                reason = _("Meta rejected it. %s", detail)
            elif template.status != "approved":
                reason = _("Meta has not approved it (status: %s).", statuses.get(template.status, template.status))
            elif template.quality == "red":
                reason = _("Its quality rating is low (red): sending more may get it paused. Improve it first.")
            elif template.unsupported_reason:
                reason = _("This app cannot fill in: %s.", template.unsupported_reason)
            template.send_block_reason = reason and reason.strip()

    @api.model
    def _meta_definition_values(self, definition):
        """Values of a synced definition that the composer needs (header kind, URL button)."""
        header = (definition.header_format or "TEXT").lower()
        quality = definition.quality.lower()
        now = fields.Datetime.now()
        values = {
            "header_format": header if header in dict(HEADER_FORMATS) else "text",
            "url_button_index": definition.url_button_index,
            "url_button_url": definition.url_button_url or False,
            # What Meta lists now beats any older webhook delivered later.
            "status_reason": definition.rejected_reason or False,
            "status_at": now,
        }
        if quality in dict(QUALITY_SCORES):
            values.update(quality=quality, quality_at=now)
        return values

    # ------------------------------------------------------------------
    # Meta's template webhooks
    # ------------------------------------------------------------------

    @api.model
    def _find_by_update(self, update):
        """The templates (one per number of the WABA) a template webhook is about."""
        by_id = [("meta_template_id", "=", update.template_id)] if update.template_id else []
        by_name = [("name", "=", update.name), ("language", "=", update.language)]
        domain = ["|", *by_id, "&", *by_name] if by_id else by_name
        return self.with_context(active_test=False).search([("account_id.waba_id", "=", update.waba_id), *domain])

    def _apply_meta_update(self, update):
        """Apply a :class:`~..tools.waba.TemplateUpdate`; late (older) deliveries change nothing."""
        now = fields.Datetime.now()
        at = update.at or now
        categories = dict(TEMPLATE_CATEGORIES)
        stopped = self.browse()
        for template in self:
            if update.kind == "template_status":
                if template.status_at and at < template.status_at:
                    continue
                status = STATUS_EVENTS.get(update.status, update.status.lower())
                values = {"status_at": at, "status_reason": update.reason or False}
                if status in dict(TEMPLATE_STATUSES):
                    values["status"] = status
                if status in ("paused", "disabled") and template.status != status:
                    stopped |= template
                template.write(values)
            elif update.kind == "template_quality":
                if template.quality_at and at < template.quality_at:
                    continue
                quality = update.quality.lower()
                template.write({"quality": quality if quality in dict(QUALITY_SCORES) else "unknown",
                                "quality_at": at})
            elif update.upcoming_category:
                upcoming = update.upcoming_category.lower()
                template.write({"upcoming_category": upcoming if upcoming in categories else False,
                                "upcoming_category_at": update.upcoming_at})
            elif update.category.lower() in categories:
                template.write({"category": update.category.lower(), "upcoming_category": False,
                                "upcoming_category_at": False})
        stopped._notify_admins_stopped()

    def _notify_admins_stopped(self):
        """Tell the admins about paused or disabled templates that were sent in the last 30 days."""
        if not self:
            return
        recent = self.env["crm.whatsapp.message"].sudo().search([
            ("template_id", "in", self.ids), ("message_date", ">=", fields.Datetime.now() - RECENT_USE)])
        used = recent.template_id
        if not used:
            return
        labels = dict(self._fields["status"]._description_selection(self.env))
        notify_admins(
            self.env,
            [(template.account_id, _("The WhatsApp template %(template)s is now %(status)s: %(reason)s "
                                     "It was sent in the last 30 days; automatic messages using it stop.",
                                     template=template.display_name, status=labels[template.status],
                                     reason=template.send_block_reason or ""))
             for template in used],
            _("WhatsApp templates"),
            _("%s template(s) in use were paused or disabled by Meta.", len(used)),
        )
