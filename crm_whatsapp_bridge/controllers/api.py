import functools

from odoo import http
from odoo.exceptions import MissingError, UserError
from odoo.http import request
from odoo.tools.misc import file_open

from ..tools.api_params import ApiError, bad_parameter, check_text, parse_json_object

SALESMAN_GROUP = "sales_team.group_sale_salesman"
MANAGER_GROUP = "sales_team.group_sale_manager"


def api_route(path, method, group):
    """An API route: ``auth='bearer'``, one method, run as the key's user, who must be in ``group``.

    Errors are answered as JSON: ApiError here, anything raised earlier (authentication)
    by ``ir.http._handle_error``.
    """
    def decorate(handler):
        @functools.wraps(handler)
        def wrapper(self, *args, **kwargs):
            if request.httprequest.method == "OPTIONS":
                # Werkzeug sends OPTIONS to every endpoint; the client only asks what is allowed.
                return request.make_response(b"", status=204, headers=[("Allow", method)])
            if not request.env.user.has_group(group):
                return api_error(ApiError(403, "forbidden", "this API key's user lacks the sales right it needs"))
            try:
                check_text(kwargs)
                return handler(self, *args, **kwargs)
            except ApiError as exc:
                return api_error(exc)
        return http.route(path, type="http", auth="bearer", methods=[method], csrf=False,
                          save_session=False, readonly=method == "GET")(wrapper)
    return decorate


def json_body():
    """The request's JSON object; an empty body is an empty object."""
    return parse_json_object(request.httprequest.get_data())


def api_error(exc):
    return request.make_json_response(exc.as_json(), status=exc.status)


class CrmJsonApi(http.Controller):
    """The JSON API: leads, funnel numbers, sync triggers and the OpenAPI document."""

    @api_route("/crm/leads", "GET", SALESMAN_GROUP)
    def leads(self, **params):
        """Leads the key's user may read, filtered, in stable (write_date, id) pages."""
        return request.make_json_response(request.env["crm.lead"]._api_search_leads(params))

    @api_route("/crm/stats", "GET", SALESMAN_GROUP)
    def stats(self, **params):
        """Funnel numbers of the leads created in a date range."""
        return request.make_json_response(request.env["crm.lead"]._api_stats(params))

    @api_route("/crm/sync-meta", "POST", MANAGER_GROUP)
    def sync_meta(self, **params):
        """Back-fill Lead Ads leads: 200 with the counts, or 202 when queued to the cron."""
        body = json_body()
        unknown = set(body) - {"page_ids", "form_ids", "since"}
        if unknown:
            raise bad_parameter(sorted(unknown)[0], "is not a parameter of this route")
        try:
            result = request.env["crm.meta.page"]._api_sync_meta(**body)
        except ValueError as exc:
            raise ApiError(400, "invalid_parameter", str(exc)) from None
        except MissingError as exc:
            raise ApiError(404, "not_found", exc.args[0]) from None
        return request.make_json_response(result, status=202 if result["mode"] == "queued" else 200)

    @api_route("/crm/sync-bigquery", "POST", MANAGER_GROUP)
    def sync_bigquery(self, **params):
        """Queue a BigQuery export now (``{"full": true}`` re-exports everything): 202 with the run."""
        body = json_body()
        unknown = set(body) - {"full"}
        if unknown:
            raise bad_parameter(sorted(unknown)[0], "is not a parameter of this route")
        try:
            run = request.env["crm.bigquery.export.run"]._api_start(full=body.get("full", False))
        except ValueError as exc:
            raise ApiError(400, "invalid_parameter", str(exc)) from None
        except UserError as exc:
            raise ApiError(409, "not_configured", exc.args[0]) from None
        return request.make_json_response(run._api_state(), status=202)

    @api_route("/crm/sync-bigquery/<int:run_id>", "GET", MANAGER_GROUP)
    def sync_bigquery_state(self, run_id, **params):
        """The state of an export run."""
        run = request.env["crm.bigquery.export.run"].browse(run_id).exists()
        if not run:
            raise ApiError(404, "not_found", f"run_id: no export run {run_id}")
        return request.make_json_response(run._api_state())

    @http.route("/crm/openapi.yaml", type="http", auth="none", methods=["GET"], csrf=False,
                save_session=False)
    def openapi(self):
        """The OpenAPI 3.1 description of every route of the addon."""
        with file_open("crm_whatsapp_bridge/static/openapi.yaml", "rb") as document:
            body = document.read()
        return request.make_response(body, headers=[("Content-Type", "application/yaml; charset=utf-8")])
