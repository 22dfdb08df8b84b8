from odoo import api, models


class IrCron(models.Model):
    _inherit = "ir.cron"

    @api.model
    def _crm_report_progress(self, xmlid, done, remaining):
        """Tell Odoo how much this call of the cron ``xmlid`` did and how much is left, commit,
        and wake the next poll at once while work is left (see ``tools/cron_budget.py``)."""
        self._notify_progress(done=done, remaining=remaining)
        if done and remaining:
            self.env.ref(xmlid).sudo()._trigger()
        self.env.cr.commit()
