import logging

from werkzeug.exceptions import HTTPException

from odoo import models
from odoo.exceptions import AccessDenied, AccessError, MissingError, UserError
from odoo.http import SessionExpiredException, request

_logger = logging.getLogger(__name__)

# The JSON API's paths: their errors are JSON, whatever stage of the request failed.
API_PATH_PREFIXES = ("/crm/leads", "/crm/stats", "/crm/sync-meta", "/crm/sync-bigquery")

UNAUTHORIZED_MESSAGE = "a valid Odoo API key is required, sent as 'Authorization: Bearer <key>'"


def _api_error_status(exception):
    """(HTTP status, error code, message) of an exception raised while serving the API."""
    if isinstance(exception, (AccessDenied, SessionExpiredException)):
        return 401, "unauthorized", UNAUTHORIZED_MESSAGE
    if isinstance(exception, HTTPException):
        if exception.code == 401:
            return 401, "unauthorized", UNAUTHORIZED_MESSAGE
        return exception.code, exception.name.lower().replace(" ", "_"), exception.description
    if isinstance(exception, AccessError):
        return 403, "forbidden", "this API key's user may not read these records"
    if isinstance(exception, MissingError):
        return 404, "not_found", exception.args[0]
    if isinstance(exception, UserError):
        return 400, "invalid_request", exception.args[0]
    return 500, "internal_error", "the server could not answer; the error is in its log"


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _serve_fallback(cls):
        # No attachment lives under the API's paths; looking one up with a NUL in the
        # path (GET /crm/sync-bigquery/%00) would fail in SQL instead of answering 404.
        if request.httprequest.path.startswith(API_PATH_PREFIXES):
            return None
        return super()._serve_fallback()

    @classmethod
    def _handle_error(cls, exception):
        if not request.httprequest.path.startswith(API_PATH_PREFIXES):
            return super()._handle_error(exception)
        status, code, message = _api_error_status(exception)
        if status >= 500:
            _logger.exception("JSON API request %s failed", request.httprequest.path)
        response = request.make_json_response({"error": {"code": code, "message": message}}, status=status)
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response
