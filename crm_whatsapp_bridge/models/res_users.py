from datetime import timedelta

import pytz

from odoo import api, fields, models


def works_at(calendar, resource, moment):
    """Whether ``calendar`` (for ``resource``, leaves included) has working time at ``moment`` (naive UTC).

    No calendar means no limit: always working.
    """
    if not calendar:
        return True
    start = pytz.utc.localize(moment)
    return bool(calendar._work_intervals_batch(start, start + timedelta(minutes=1), resources=resource)[resource.id])


class ResUsers(models.Model):
    _inherit = "res.users"

    whatsapp_available = fields.Boolean(
        "Available for WhatsApp", default=True,
        help="Off: no new WhatsApp or Lead Ads lead is assigned to you, even during your working hours.")

    @property
    def SELF_READABLE_FIELDS(self):
        return super().SELF_READABLE_FIELDS + ["whatsapp_available"]

    @property
    def SELF_WRITEABLE_FIELDS(self):
        return super().SELF_WRITEABLE_FIELDS + ["whatsapp_available"]

    def _whatsapp_calendar(self):
        """The working hours of the user: their own (employee or user resource), else their company's."""
        self.ensure_one()
        return self.resource_calendar_id or self.company_id.resource_calendar_id

    def _whatsapp_working_at(self, moment):
        """The users of ``self`` whose working hours include ``moment`` (naive UTC); no hours means always."""
        return self.filtered(lambda user: works_at(user._whatsapp_calendar(), user.resource_ids[:1], moment))

    def _whatsapp_assignable(self, moment=None):
        """Active internal users of ``self`` switched on for WhatsApp and working at ``moment`` (now)."""
        candidates = self.filtered(lambda user: user.active and not user.share and user.whatsapp_available)
        return candidates._whatsapp_working_at(moment or fields.Datetime.now())

    @api.model
    def action_whatsapp_set_available(self, available):
        """The current user's "available for WhatsApp" switch (systray and preferences)."""
        self.env.user.whatsapp_available = bool(available)
        if available:
            # sudo: a salesperson may not read crons; waking the assignment cron is all this does.
            self.env.ref("crm_whatsapp_bridge.ir_cron_whatsapp_assign_waiting").sudo()._trigger()
        return self.env.user.whatsapp_available
