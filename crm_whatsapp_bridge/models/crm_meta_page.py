import logging
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, MissingError, UserError

from ..tools.graph_client import GraphApiError, GraphClient
from .crm_inbox_event import notify_admins

_logger = logging.getLogger(__name__)

# Meta keeps lead form submissions retrievable for 90 days.
RETENTION = timedelta(days=90)
# A back-fill runs in the request only when Meta has at most this many leads to give (one
# Graph page per form): anything bigger could outlast the worker's time limit, so it is queued.
INLINE_LIMIT = 100
SAFETY_NET_WINDOW = timedelta(hours=48)
BACKFILL_CRON_XMLID = "crm_whatsapp_bridge.ir_cron_meta_backfill"


class MetaTokenError(GraphApiError):
    """A page's access token is refused by Meta (or known to be): only an admin can fix it."""

    def __init__(self, page, message):
        super().__init__(message, code=190)
        self.page = page


class CrmMetaPage(models.Model):
    """A Facebook page whose Lead Ads forms feed the CRM."""

    _name = "crm.meta.page"
    _description = "Meta Page"
    _inherit = ["mail.thread"]
    _order = "name, id"
    _check_company_auto = True

    name = fields.Char(required=True, tracking=True)
    page_id = fields.Char(
        "Page ID", required=True, tracking=True, index=True,
        help="The Facebook page's ID (Page settings > About, or Meta Business Suite).")
    access_token = fields.Char(
        groups="base.group_system", copy=False,
        help="A page access token with the leads_retrieval, pages_manage_ads, pages_read_engagement and "
             "pages_show_list permissions (a System User token does not expire).")
    token_error = fields.Text(
        "Token Problem", readonly=True, copy=False,
        help="Why Meta refused the access token. Lead Ads leads of this page wait in the inbox until the "
             "token is replaced; they are processed again as soon as it is.")
    team_id = fields.Many2one("crm.team", "Sales Team", tracking=True, check_company=True,
                              help="New leads from this page go to this team.")
    user_id = fields.Many2one(
        "res.users", "Salesperson", tracking=True, domain=[("share", "=", False)], check_company=True,
        help="New leads from this page are assigned to this salesperson. Leave empty to leave them "
             "unassigned in the sales team.")
    company_id = fields.Many2one("res.company", default=lambda self: self.env.company, required=True)
    active = fields.Boolean(default=True)
    form_ids = fields.One2many("crm.meta.form", "page_id", "Lead Forms")
    form_count = fields.Integer(compute="_compute_form_count")
    lead_count = fields.Integer(compute="_compute_lead_count")

    _sql_constraints = [
        ("page_id_uniq", "unique(page_id)", "This Facebook page is already connected."),
    ]

    @api.depends("form_ids")
    def _compute_form_count(self):
        counts = dict(self.env["crm.meta.form"]._read_group(
            [("page_id", "in", self.ids)], ["page_id"], ["__count"]))
        for page in self:
            page.form_count = counts.get(page, 0)

    def _compute_lead_count(self):
        counts = dict(self.env["crm.lead"].with_context(active_test=False)._read_group(
            [("meta_page_id", "in", self.ids)], ["meta_page_id"], ["__count"]))
        for page in self:
            page.lead_count = counts.get(page, 0)

    @api.model_create_multi
    def create(self, vals_list):
        pages = super().create(vals_list)
        pages._requeue_waiting_events()
        return pages

    def write(self, vals):
        if "access_token" in vals:
            vals = dict(vals, token_error=False)
        result = super().write(vals)
        if {"access_token", "page_id", "active"} & set(vals):
            self.filtered("active")._requeue_waiting_events()
        return result

    def _requeue_waiting_events(self):
        """Leads that waited for this page (unknown page, refused token) are processed again."""
        events = self.env["crm.inbox.event"].sudo().search([
            ("source", "=", "meta"), ("state", "=", "dead"), ("channel_ref", "in", self.mapped("page_id"))])
        if events:
            events.action_requeue()

    # ------------------------------------------------------------------
    # Graph API
    # ------------------------------------------------------------------

    def _graph_client(self):
        """Graph API client authenticated with this page's token; refuses a token known to be bad."""
        self.ensure_one()
        if self.token_error:
            raise MetaTokenError(self, self.token_error)
        return GraphClient(self.sudo().access_token or "", self.env["crm.whatsapp.account"]._graph_base_url())

    @contextmanager
    def _token_errors(self):
        """Turn the Graph errors only an admin can fix into a :class:`MetaTokenError` of this page."""
        try:
            yield
        except GraphApiError as exc:
            if exc.needs_admin and not isinstance(exc, MetaTokenError):
                raise MetaTokenError(self, str(exc)) from exc
            raise

    def _graph_call(self, method, *args, **kwargs):
        """Call a :class:`GraphClient` method with this page's token."""
        with self._token_errors():
            return getattr(self._graph_client(), method)(*args, **kwargs)

    def _flag_token_error(self, message):
        """Remember that Meta refuses the token and tell the admins, once per problem."""
        self.ensure_one()
        page = self.sudo()
        if page.token_error:
            return
        _logger.warning("Meta refused the access token of page %s (%s): %s", page.page_id, page.name, message)
        super(CrmMetaPage, page).write({"token_error": message})
        notify_admins(
            self.env,
            [(page, _("Meta refused the access token of this page: %s. Lead Ads leads of this page wait in the "
                      "inbox; paste a new page access token here and they are processed again.", message))],
            _("Meta Lead Ads"),
            _("The access token of the page %s was refused. Its leads wait until the token is "
              "replaced (CRM > Configuration > WhatsApp & Meta > Meta Pages).", page.name),
        )

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------

    def action_sync_forms(self):
        """Read each page's lead forms (and their questions) from Meta."""
        created = updated = 0
        for page in self:
            try:
                counts = page._sync_forms()
            except MetaTokenError as exc:
                # Not an exception: the flag (and the admins' notice) must survive this request.
                page._flag_token_error(str(exc))
                return self._notification(_("Meta refused the access token of %s", page.name), str(exc), "danger")
            except GraphApiError as exc:
                raise UserError(_("Meta refused to list the lead forms of %(page)s: %(error)s",
                                  page=page.name, error=exc)) from exc
            created, updated = created + counts[0], updated + counts[1]
        return self._notification(_("Lead forms synchronised"),
                                  _("%(created)s new, %(updated)s updated.", created=created, updated=updated))

    def _sync_forms(self):
        self.ensure_one()
        return self.env["crm.meta.form"]._sync_page(self, self._graph_call("leadgen_forms", self.page_id))

    def action_sync_now(self):
        """Back-fill every lead still retrievable from Meta (90 days) for this page's forms."""
        result = self._api_sync_meta(page_ids=self.mapped("page_id"))
        if result["mode"] == "queued":
            message = _("The leads of the last 90 days of %(count)s form(s) are read in the background; "
                        "new leads appear as they arrive.", count=result["forms"])
        else:
            message = _("%(fetched)s read, %(created)s created, %(present)s already present, %(failed)s failed.",
                        fetched=result["fetched"], created=result["created"],
                        present=result["already_present"], failed=result["failed"])
        return self._notification(_("Lead Ads back-fill"), message)

    def _notification(self, title, message, kind="success"):
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": kind, "title": title, "message": message,
                       "next": {"type": "ir.actions.client", "tag": "soft_reload"}},
        }

    def action_open_forms(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": _("Lead Forms of %s", self.name),
            "res_model": "crm.meta.form",
            "view_mode": "list,form",
            "domain": [("page_id", "=", self.id)],
            "context": {"default_page_id": self.id},
        }

    def action_open_leads(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("crm.crm_lead_all_leads")
        action.update({
            "domain": [("meta_page_id", "=", self.id)],
            "context": {"active_test": False},
            "name": _("Leads from %s", self.name),
        })
        return action

    # ------------------------------------------------------------------
    # Back-fill (behind POST /crm/sync-meta and the Sync now button)
    # ------------------------------------------------------------------

    @api.model
    def _api_sync_meta(self, page_ids=None, form_ids=None, since=None):
        """Back-fill Lead Ads leads that are not in Odoo yet.

        The first page of each form's leads is read in the call and stored in the
        inbox. When that is everything Meta has (no further page, and at most
        :data:`INLINE_LIMIT` leads in all), the new leads are created in the call
        through the inbox processing; otherwise the stored leads are left to the
        inbox cron and the remaining pages to the back-fill cron, and the call
        answers at once. Either way the inbox is the one path that creates leads, so
        a request and the crons never create the same lead twice.

        :param page_ids: Meta page ids (strings or integers) whose forms are read;
            their forms are first refreshed from Meta
        :param form_ids: Meta form ids; with ``page_ids`` they add to the pages' forms
        :param since: ISO 8601 date or date-time (UTC unless it has an offset) or unix
            seconds; leads created after it are read. Default and floor: 90 days ago.
        :return: dict with ``mode`` (``"inline"`` or ``"queued"``), ``since`` (ISO,
            UTC), ``forms``, ``fetched``, ``created``, ``merged`` (answers posted on the
            person's open lead), ``already_present``, ``failed``, ``queued`` (leads left
            to the crons, not counting pages not read yet) and ``errors`` (list of
            ``{"page_id", "form_id", "message"}``).
        :raise ValueError: a parameter has the wrong type or format (names the parameter)
        :raise MissingError: unknown or inactive page/form ids (names the parameter)
        :raise AccessError: the user is not a Sales Manager
        """
        if not self.env.su and not self.env.user.has_group("sales_team.group_sale_manager"):
            raise AccessError(_("Only Sales Managers can back-fill Lead Ads leads."))
        now = fields.Datetime.now()
        since_dt = self._parse_since(since, now)
        clamped = since_dt < now - RETENTION
        since_dt = max(since_dt, now - RETENTION)
        forms = self._forms_to_sync(self._id_list(page_ids, "page_ids"), self._id_list(form_ids, "form_ids"))
        result = {"mode": "inline", "since": since_dt.isoformat() + "Z", "since_clamped": clamped,
                  "forms": len(forms), "fetched": 0, "created": 0, "merged": 0, "already_present": 0,
                  "failed": 0, "queued": 0, "errors": []}
        new_ids, unfinished = [], forms.browse()
        for form in forms:
            counts, stored, has_more = form._backfill_first_page(since_dt, INLINE_LIMIT)
            new_ids += stored
            if has_more:
                unfinished |= form
            for key in ("fetched", "already_present"):
                result[key] += counts[key]
            result["errors"] += counts["errors"]
        Inbox = self.env["crm.inbox.event"].sudo()
        if unfinished or len(new_ids) > INLINE_LIMIT:
            unfinished._queue_backfill(since_dt)
            if new_ids:
                Inbox._trigger_processing()
            result.update(mode="queued", queued=len(new_ids))
            return result
        events = Inbox.browse(new_ids)
        events._process()
        done = events.filtered(lambda event: event.state == "done")
        result["failed"] = len(events) - len(done)
        result["created"] = self.env["crm.lead"].sudo().with_context(active_test=False).search_count(
            [("meta_leadgen_id", "in", done.mapped("external_id"))])
        result["merged"] = len(done) - result["created"]
        return result

    @api.model
    def _id_list(self, value, name):
        """Meta ids given to the API as a list of strings or integers."""
        if value in (None, ""):
            return []
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(item, (str, int)) and not isinstance(item, bool)
                and str(item).strip().isascii() and str(item).strip().isdigit()
                for item in value):
            raise ValueError(_("%s must be a list of numeric Meta ids", name))
        return [str(item).strip() for item in value]

    @api.model
    def _parse_since(self, since, now):
        if since in (None, ""):
            return now - RETENTION
        if isinstance(since, bool):
            raise ValueError(_("since must be an ISO 8601 date or date-time, or unix seconds"))
        try:
            if isinstance(since, (int, float)):
                moment = datetime.fromtimestamp(since, tz=timezone.utc)
            else:
                moment = datetime.fromisoformat(str(since).strip().replace("Z", "+00:00"))
            if moment.tzinfo:  # inside the try: an offset can leave the years 1-9999
                moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        except (TypeError, ValueError, OverflowError, OSError) as exc:
            raise ValueError(_("since must be an ISO 8601 date or date-time, or unix seconds; got %s",
                               since)) from exc
        if moment > now + timedelta(minutes=5):
            raise ValueError(_("since must not be in the future; got %s", since))
        return moment

    @api.model
    def _forms_to_sync(self, page_ids, form_ids):
        Form = self.env["crm.meta.form"]
        pages = self.browse()
        if page_ids:
            pages = self.search([("page_id", "in", page_ids)])
            unknown = sorted(set(page_ids) - set(pages.mapped("page_id")))
            if unknown:
                raise MissingError(_("page_ids: no active Meta page has the id(s) %s", ", ".join(unknown)))
        forms = Form.browse()
        if form_ids:
            forms = Form.search([("form_id", "in", form_ids), ("page_id.active", "=", True)])
            unknown = sorted(set(form_ids) - set(forms.mapped("form_id")))
            if unknown:
                raise MissingError(_("form_ids: no active lead form has the id(s) %s", ", ".join(unknown)))
        if not page_ids and not form_ids:
            pages = self.search([])
        pages.filtered(lambda p: not p.token_error)._refresh_forms()
        return forms | Form.search([("page_id", "in", pages.ids)])

    def _refresh_forms(self, commit=False):
        """Best-effort form sync before a back-fill: a page Meta refuses is flagged and skipped."""
        for page in self:
            try:
                page._sync_forms()
            except GraphApiError as exc:
                if isinstance(exc, MetaTokenError):
                    page._flag_token_error(str(exc))
                _logger.warning("Could not refresh the lead forms of page %s: %s", page.page_id, exc)
            if commit:
                self.env.cr.commit()

    @api.model
    def _cron_daily_sync(self):
        """Safety net for missed webhooks: back-fill the last 48 hours of every form."""
        pages = self.search([("token_error", "=", False)])
        pages._refresh_forms(commit=True)
        forms = self.env["crm.meta.form"].search([("page_id", "in", pages.ids)])
        forms._queue_backfill(fields.Datetime.now() - SAFETY_NET_WINDOW, trigger=False)
        self.env["crm.meta.form"]._cron_backfill()

