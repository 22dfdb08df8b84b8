from datetime import timedelta

from odoo import api, fields, models

RETENTION_PARAM = "crm_whatsapp_bridge.retention_days"
DEFAULT_RETENTION_DAYS = 30
# Rows handled per cron call; Odoo calls the job again at once while some remain (see _notify_progress).
PURGE_BATCH = 5000


class CrmWhatsappRetention(models.AbstractModel):
    """Purges raw webhook payloads and analytics payloads once they have served.

    Processed inbox events are deleted (their payload holds the customer's message and
    number); sent analytics events keep their row, which stops the same lead transition
    from being sent twice, without the payload and the answer. Pending, failed and dead
    rows are never purged: they wait until an admin requeues or deletes them.
    """

    _name = "crm.whatsapp.retention"
    _description = "WhatsApp & Meta data retention"

    @api.model
    def _retention_days(self):
        try:
            days = int(self.env["ir.config_parameter"].sudo().get_param(RETENTION_PARAM, DEFAULT_RETENTION_DAYS))
        except ValueError:
            days = DEFAULT_RETENTION_DAYS
        return max(days, 1)

    @api.model
    def _purge_domains(self):
        limit = fields.Datetime.now() - timedelta(days=self._retention_days())
        return (
            [("state", "=", "done"), ("processed_at", "<", limit)],
            [("state", "=", "sent"), ("sent_at", "<", limit), ("payload", "!=", False)],
        )

    @api.model
    def _cron_purge(self):
        inbox_domain, analytics_domain = self._purge_domains()
        Inbox = self.env["crm.inbox.event"].sudo()
        Analytics = self.env["crm.analytics.event"].sudo()
        events = Inbox.search(inbox_domain, limit=PURGE_BATCH)
        events.unlink()
        sent = Analytics.search(analytics_domain, limit=PURGE_BATCH)
        sent.write({"payload": False, "response": False, "validation_messages": False})
        self.env["ir.cron"]._notify_progress(
            done=len(events) + len(sent),
            remaining=Inbox.search_count(inbox_domain) + Analytics.search_count(analytics_domain))
