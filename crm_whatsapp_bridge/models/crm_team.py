from odoo import fields, models
from odoo.tools import SQL


def take_round_robin_turn(cr, team_id, candidate_ids):
    """The next of ``candidate_ids`` after the team's last assignee, recorded as the new last one.

    Works on a plain cursor: the team's row is locked with ``SELECT ... FOR UPDATE``, so
    workers assigning leads of one team at the same time take turns one after the other
    (until each one's transaction ends) and never pick the same member twice in a row.
    The rotation lives in the database, so it survives restarts and is shared by all workers.
    """
    ordered = sorted(candidate_ids)
    cr.execute(SQL("SELECT whatsapp_last_assigned_user_id FROM crm_team WHERE id = %s FOR UPDATE", team_id))
    last = (cr.fetchone() or (None,))[0] or 0
    chosen = next((user_id for user_id in ordered if user_id > last), ordered[0])
    cr.execute(SQL("UPDATE crm_team SET whatsapp_last_assigned_user_id = %s WHERE id = %s", chosen, team_id))
    return chosen


class CrmTeam(models.Model):
    _inherit = "crm.team"

    whatsapp_last_assigned_user_id = fields.Many2one(
        "res.users", "Last WhatsApp Assignee", readonly=True, copy=False,
        help="Round robin starts after this member for the next WhatsApp or Lead Ads lead.")
    whatsapp_sla_minutes = fields.Integer(
        "First Response Target (minutes)", default=15,
        help="A customer who opens a WhatsApp conversation gets a first reply within this many working "
             "minutes (working hours of the salesperson, else of the company). 0 turns the target off.")
    whatsapp_escalation_minutes = fields.Integer(
        "Escalate After (minutes)", default=30,
        help="When the first response target is missed, the salesperson gets an activity at once; the "
             "team leader is told if the customer still waits this many minutes later.")

    def _whatsapp_take_turn(self, candidates):
        """Round robin among ``candidates`` (users), serialised across workers on the team's row."""
        self.ensure_one()
        self.flush_recordset(["whatsapp_last_assigned_user_id"])
        chosen = take_round_robin_turn(self.env.cr, self.id, candidates.ids)
        self.invalidate_recordset(["whatsapp_last_assigned_user_id"])
        return candidates.browse(chosen)

    def _whatsapp_lock(self):
        """Serialise the assignments of this team until the transaction ends (least-open rule)."""
        self.ensure_one()
        self.env.cr.execute(SQL("SELECT id FROM crm_team WHERE id = %s FOR UPDATE", self.id))
