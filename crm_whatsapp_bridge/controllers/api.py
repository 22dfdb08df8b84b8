import functools

from odoo import http
from odoo.http import request
from odoo.tools.misc import file_open

from ..tools.api_params import ApiError

SALESMAN_GROUP = "sales_team.group_sale_salesman"
MANAGER_GROUP = "sales_team.group_sale_manager"


def crm_api(group):
    """Run the route as the API key's user, who must belong to ``group``; answer errors as JSON.

    Authentication failures never reach the route: ``ir.http._handle_error`` answers
    those in JSON for the paths of this API.
    """
    def decorate(route):
        @functools.wraps(route)
        def wrapper(self, *args, **kwargs):
            if not request.env.user.has_group(group):
                return api_error(ApiError(403, "forbidden", "this API key's user lacks the sales right it needs"))
            try:
                return route(self, *args, **kwargs)
            except ApiError as exc:
                return api_error(exc)
        return wrapper
    return decorate


def api_error(exc):
    return request.make_json_response(exc.as_json(), status=exc.status)


class CrmJsonApi(http.Controller):
    """The JSON API: leads, funnel numbers, sync triggers and the OpenAPI document."""

    @http.route("/crm/leads", type="http", auth="bearer", methods=["GET"], csrf=False,
                save_session=False, readonly=True)
    @crm_api(SALESMAN_GROUP)
    def leads(self, **params):
        """Leads the key's user may read, filtered, in stable (write_date, id) pages."""
        return request.make_json_response(request.env["crm.lead"]._api_search_leads(params))

    @http.route("/crm/stats", type="http", auth="bearer", methods=["GET"], csrf=False,
                save_session=False, readonly=True)
    @crm_api(SALESMAN_GROUP)
    def stats(self, **params):
        """Funnel numbers of the leads created in a date range."""
        return request.make_json_response(request.env["crm.lead"]._api_stats(params))

    @http.route("/crm/sync-meta", type="http", auth="bearer", methods=["POST"], csrf=False,
                save_session=False)
    @crm_api(MANAGER_GROUP)
    def sync_meta(self, **params):
        raise ApiError(501, "not_implemented", "Lead Ads back-fill is not available in this version")

    @http.route("/crm/sync-bigquery", type="http", auth="bearer", methods=["POST"], csrf=False,
                save_session=False)
    @crm_api(MANAGER_GROUP)
    def sync_bigquery(self, **params):
        raise ApiError(501, "not_implemented", "The BigQuery export is not available in this version")

    @http.route("/crm/openapi.yaml", type="http", auth="none", methods=["GET"], csrf=False,
                save_session=False)
    def openapi(self):
        """The OpenAPI 3.1 description of every route of the addon."""
        with file_open("crm_whatsapp_bridge/static/openapi.yaml", "rb") as document:
            body = document.read()
        return request.make_response(body, headers=[("Content-Type", "application/yaml; charset=utf-8")])
