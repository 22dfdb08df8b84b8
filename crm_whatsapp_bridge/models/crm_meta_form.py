import logging
from contextlib import contextmanager
from datetime import timezone

from odoo import _, api, fields, models
from odoo.tools import config

from ..tools.cron_budget import CronBudget
from ..tools.graph_client import GraphApiError
from ..tools.leadgen import backfill_payload, default_target, leadgen_event
from ..tools.payload import storable
from .crm_meta_page import BACKFILL_CRON_XMLID, MetaTokenError

_logger = logging.getLogger(__name__)

TARGET_SELECTION = [
    ("contact_name", "Contact Name"),
    ("first_name", "First Name"),
    ("last_name", "Last Name"),
    ("email", "Email"),
    ("phone", "Phone"),
    ("city", "City"),
    ("state", "State"),
    ("country", "Country"),
    ("zip", "ZIP"),
    ("street", "Street"),
    ("company", "Company Name"),
    ("job_title", "Job Position"),
    ("description", "Description"),
    ("tag", "Tag"),
    ("property", "Property"),
    ("ignore", "Ignore"),
]
FORM_STATUSES = [("active", "Active"), ("archived", "Archived"), ("deleted", "Deleted"), ("draft", "Draft")]


def _unix(moment):
    """Unix seconds of a naive UTC datetime."""
    return int(moment.replace(tzinfo=timezone.utc).timestamp())


class CrmMetaForm(models.Model):
    """A Lead Ads form of a page, synced from the Graph API, with where its answers go."""

    _name = "crm.meta.form"
    _description = "Lead Ads Form"
    _order = "page_id, name, id"

    name = fields.Char(required=True)
    form_id = fields.Char("Form ID", required=True, index=True, readonly=True)
    page_id = fields.Many2one("crm.meta.page", "Page", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="page_id.company_id", store=True)
    status = fields.Selection(FORM_STATUSES, readonly=True)
    locale = fields.Char(readonly=True)
    questions = fields.Json(readonly=True)
    mapping_ids = fields.One2many("crm.meta.form.mapping", "form_id", "Answer Mapping")
    active = fields.Boolean(default=True)
    lead_count = fields.Integer(compute="_compute_lead_count")
    backfill_since = fields.Datetime(
        "Back-fill Queued From", readonly=True, copy=False,
        help="A back-fill of the leads created since this time waits for the back-fill cron.")
    backfill_after = fields.Char(
        "Back-fill Cursor", readonly=True, copy=False,
        help="Meta's cursor of the next page to read: a back-fill stopped between pages resumes here.")
    last_backfill_at = fields.Datetime("Last Back-fill", readonly=True, copy=False)
    last_backfill_result = fields.Char("Last Back-fill Result", readonly=True, copy=False)

    _sql_constraints = [("form_id_uniq", "unique(form_id)", "This lead form is already synced.")]

    def _compute_lead_count(self):
        counts = dict(self.env["crm.lead"].with_context(active_test=False)._read_group(
            [("meta_form_id", "in", self.ids)], ["meta_form_id"], ["__count"]))
        for form in self:
            form.lead_count = counts.get(form, 0)

    @api.model
    def _sync_page(self, page, forms):
        """Create or update the forms of ``page`` from Graph form objects; return (created, updated)."""
        existing = {form.form_id: form for form in self.with_context(active_test=False).search(
            [("page_id", "=", page.id)])}
        statuses = dict(FORM_STATUSES)
        created = updated = 0
        for data in forms:
            form_id = str(data.get("id") or "")
            if not form_id:
                continue
            status = (data.get("status") or "").lower()
            values = {
                "name": data.get("name") or form_id,
                "status": status if status in statuses else False,
                "locale": data.get("locale") or False,
                "questions": data.get("questions") or [],
            }
            form = existing.get(form_id)
            if form:
                form.write(values)
                updated += 1
            else:
                form = self.create(dict(values, page_id=page.id, form_id=form_id))
                created += 1
            form._ensure_mapping_lines()
        return created, updated

    def _ensure_mapping_lines(self):
        """A mapping line per question, defaulting Meta's standard questions; admins' choices are kept."""
        for form in self:
            known = set(form.mapping_ids.mapped("question_key"))
            new_lines = []
            for sequence, question in enumerate(form.questions or []):
                key = question.get("key") if isinstance(question, dict) else None
                if not key or key in known:
                    continue
                known.add(key)
                new_lines.append({
                    "form_id": form.id,
                    "sequence": sequence,
                    "question_key": key,
                    "label": question.get("label") or key,
                    "question_type": question.get("type") or False,
                    "target": default_target(key),
                })
            self.env["crm.meta.form.mapping"].create(new_lines)

    def _answer_mapping(self):
        """(question key -> target, question key -> label) of this form (empty without a form)."""
        lines = self.mapping_ids
        return ({line.question_key: line.target for line in lines},
                {line.question_key: line.label for line in lines if line.label})

    def action_open_leads(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("crm.crm_lead_all_leads")
        action.update({"domain": [("meta_form_id", "=", self.id)], "context": {"active_test": False},
                       "name": _("Leads from %s", self.name)})
        return action

    # ------------------------------------------------------------------
    # Back-fill
    # ------------------------------------------------------------------

    def _queue_backfill(self, since, trigger=True):
        """Ask the back-fill cron to read the leads created since ``since`` (the earliest ask wins)."""
        for form in self:
            if not form.backfill_since or since < form.backfill_since:
                # A cursor belongs to the time filter it was read with: start the wider range over.
                form.write({"backfill_since": since, "backfill_after": False})
        if trigger and self:
            self.env.ref(BACKFILL_CRON_XMLID).sudo()._trigger()

    def _backfill(self, since, commit=False, budget=None):
        """Read this form's leads created after ``since`` and put the missing ones in the inbox.

        Leads already in Odoo (by leadgen id) or already in the inbox are not stored
        again; the inbox cron turns the new ones into leads, as for webhooks. Reading
        starts at the saved cursor ``backfill_after``, if any. With ``commit`` each
        page is committed as it is stored, with the cursor of the next page; with a
        ``budget`` (:class:`~..tools.cron_budget.CronBudget`) the reading stops between
        pages once it is spent, and the next call resumes at the saved cursor.

        :return: dict of counts ``fetched``, ``already_present``, ``queued``, ``errors``
            (list of dicts) and ``finished`` (False when stopped by the budget)
        """
        self.ensure_one()
        counts = dict(self._empty_backfill_counts(), finished=True)
        new_ids = []
        client = self.page_id._graph_client()
        with self._backfill_errors(counts):
            for batch, after in client.form_lead_pages(self.form_id, since=_unix(since), after=self.backfill_after):
                new_ids += self._store_backfill_batch(batch, counts)
                self.backfill_after = after
                if commit:
                    self.env.cr.commit()
                if after and budget and budget.exhausted():
                    counts["finished"] = False
                    break
        counts["queued"] = len(new_ids)
        if new_ids:
            self.env["crm.inbox.event"]._trigger_processing()
        return counts

    def _backfill_first_page(self, since, page_size):
        """Read the first page of this form's leads created after ``since`` and store the missing ones.

        :return: ``(counts, new inbox event ids, has_more)``; ``has_more`` says that
            Meta has further pages, which only the back-fill cron reads.
        """
        self.ensure_one()
        counts = self._empty_backfill_counts()
        new_ids, has_more = [], False
        with self._backfill_errors(counts):
            batch, has_more = self.page_id._graph_client().form_leads_first_page(
                self.form_id, since=_unix(since), page_size=page_size)
            new_ids = self._store_backfill_batch(batch, counts)
        return counts, new_ids, has_more

    @api.model
    def _empty_backfill_counts(self):
        return {"fetched": 0, "created": 0, "merged": 0, "already_present": 0, "failed": 0, "queued": 0,
                "errors": []}

    @contextmanager
    def _backfill_errors(self, counts):
        """Record a refused read in ``counts`` (and flag a refused token) instead of raising."""
        page = self.page_id
        try:
            with page._token_errors():
                yield
        except GraphApiError as exc:
            if isinstance(exc, MetaTokenError):
                page._flag_token_error(str(exc))
            _logger.warning("Back-fill of lead form %s stopped: %s", self.form_id, exc)
            counts["errors"].append({"page_id": page.page_id, "form_id": self.form_id, "message": str(exc)})

    def _store_backfill_batch(self, batch, counts):
        """Store the leads of one Graph page that Odoo does not have yet; return the new inbox ids."""
        page_id = self.page_id.page_id
        leads = [obj for obj in batch if isinstance(obj, dict) and obj.get("id")]
        in_odoo = set(self.env["crm.lead"].sudo().with_context(active_test=False).search(
            [("meta_leadgen_id", "in", [str(o["id"]) for o in leads])]).mapped("meta_leadgen_id"))
        stored = self.env["crm.inbox.event"].sudo()._insert_events("meta", [
            storable(leadgen_event(obj["id"], page_id, backfill_payload(page_id, obj)))
            for obj in leads if str(obj["id"]) not in in_odoo])
        counts["fetched"] += len(batch)
        counts["already_present"] += len(batch) - len(stored)
        return stored

    @api.model
    def _cron_backfill(self):
        """Run the queued back-fills page by page, committing as it goes, within a :class:`CronBudget`."""
        budget = CronBudget(limit_time_cpu=config["limit_time_cpu"])
        domain = [("backfill_since", "!=", False), ("page_id.active", "=", True),
                  ("page_id.token_error", "=", False)]
        forms_worked = 0
        for form in self.search(domain):
            counts = form._backfill(form.backfill_since, commit=True, budget=budget)
            forms_worked += 1
            result = _("%(fetched)s read, %(new)s new, %(present)s already present",
                       fetched=counts["fetched"], new=counts["queued"], present=counts["already_present"])
            if not counts["finished"]:
                result += _("; continues in the background")
            elif counts["errors"]:
                result += "; " + counts["errors"][0]["message"]
            form.write({
                # A stopped or failed read stays queued for the next run (a refused token waits for a new one).
                "backfill_since": form.backfill_since if counts["errors"] or not counts["finished"] else False,
                "last_backfill_at": fields.Datetime.now(),
                "last_backfill_result": result,
            })
            self.env.cr.commit()
            if budget.exhausted():
                break
        self.env["ir.cron"]._crm_report_progress(BACKFILL_CRON_XMLID, forms_worked, self.search_count(domain))


class CrmMetaFormMapping(models.Model):
    """Where the answer to one question of a lead form goes on the lead."""

    _name = "crm.meta.form.mapping"
    _description = "Lead Ads Answer Mapping"
    _order = "form_id, sequence, id"

    form_id = fields.Many2one("crm.meta.form", "Lead Form", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="form_id.company_id", store=True)
    sequence = fields.Integer(default=10)
    question_key = fields.Char("Question Key", required=True,
                               help="The key Meta gives the question (full_name, email, or the advertiser's own).")
    label = fields.Char("Question")
    question_type = fields.Char("Question Type", readonly=True)
    target = fields.Selection(
        TARGET_SELECTION, "Goes To", required=True, default="description",
        help="Where the answer goes on the lead. Description: a line 'question: answer'. Tag: the answer "
             "becomes a tag. Property: a text property of the lead, created on the sales team if needed.")

    _sql_constraints = [("question_uniq", "unique(form_id, question_key)",
                         "Each question of a form is mapped once.")]

    @api.onchange("question_key")
    def _onchange_question_key(self):
        for line in self:
            if line.question_key:
                line.target = default_target(line.question_key)
