"""A local stand-in for Meta's Graph API (Cloud API messages, media, templates, Lead Ads), speaking its wire format.

Tests script its answers per path and read back the exact requests it received.
"""

import base64
import json
from collections import deque
from datetime import datetime, timezone
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from .fake_server import LocalServer


class FakeGraphServer(LocalServer):
    def __init__(self):
        self.requests = []
        self._scripted = {}
        self._handlers = {}
        super().__init__()

    def respond(self, path, *answers):
        """Queue answers for ``path``: (status, json_or_bytes[, content_type]); the last one repeats."""
        self._handlers.pop(path, None)
        self._scripted[path] = deque(answers)

    def add_media(self, media_id, content, mime_type="image/jpeg"):
        """Serve a media object the way Meta does: id -> short-lived URL -> bytes."""
        download_path = f"/download/{media_id}"
        self.respond(f"/{media_id}", (200, {
            "url": self.url + download_path, "mime_type": mime_type, "sha256": "x",
            "file_size": len(content), "id": media_id, "messaging_product": "whatsapp"}))
        self.respond(download_path, (200, content, mime_type))

    def handle(self, path, handler):
        """Answer ``path`` with ``handler(request) -> (status, json)``, for answers that depend on the query."""
        self._scripted.pop(path, None)
        self._handlers[path] = handler

    def add_lead(self, lead):
        """Serve a Lead Ads lead object at ``/<leadgen id>``."""
        self.respond(f"/{lead['id']}", (200, lead))

    def add_page_forms(self, page_id, forms):
        """Serve a page's lead forms at ``/<page id>/leadgen_forms`` (one page of results)."""
        self.respond(f"/{page_id}/leadgen_forms", (200, {"data": forms, "paging": {
            "cursors": {"before": _cursor(0), "after": _cursor(len(forms))}}}))

    def add_form_leads(self, form_id, leads, errors=None, page_size=None):
        """Serve ``/<form id>/leads`` like Meta: ``limit`` (or ``page_size``) per page, ``after``
        cursors, a ``next`` URL until the last page, and the ``filtering`` on ``time_created``.

        ``errors`` maps a page number (0-based) to a ``(status, json)`` answered once instead of it.
        """
        path = f"/{form_id}/leads"
        errors = dict(errors or {})

        def handler(request):
            args = request.args.to_dict()
            start = _uncursor(args.get("after"))
            limit = page_size or int(args.get("limit") or 25)
            if start // limit in errors:
                return errors.pop(start // limit)
            selected = [lead for lead in leads if _matches(lead, args.get("filtering"))]
            data = selected[start:start + limit]
            paging = {"cursors": {"before": _cursor(start), "after": _cursor(start + len(data))}}
            if start + limit < len(selected):
                paging["next"] = f"{self.url}{path}?" + urlencode(
                    dict(args, access_token="PAGE_TOKEN", after=_cursor(start + limit)))
            return 200, {"data": data, "paging": paging}

        self.handle(path, handler)

    @Request.application
    def _app(self, request):
        uploaded = {name: (f.filename, f.read(), f.mimetype) for name, f in request.files.items()}
        self.requests.append({
            "method": request.method,
            "path": request.path,
            "authorization": request.headers.get("Authorization"),
            "args": request.args.to_dict(),
            "json": request.get_json(silent=True) if request.is_json else None,
            "form": request.form.to_dict(),
            "files": uploaded,
        })
        if request.path in self._handlers:
            status, body = self._handlers[request.path](request)
            return Response(json.dumps(body), status=status, content_type="application/json")
        answers = self._scripted.get(request.path)
        if not answers:
            return _graph_error(404, 100, "Unsupported get request.")
        answer = answers.popleft() if len(answers) > 1 else answers[0]
        status, body = answer[0], answer[1]
        if isinstance(body, (bytes, str)):
            content_type = answer[2] if len(answer) > 2 else "application/octet-stream"
            return Response(body, status=status, content_type=content_type)
        return Response(json.dumps(body), status=status, content_type="application/json")

    def paths(self):
        return [req["path"] for req in self.requests]

    def received(self, path, method="POST"):
        return [req for req in self.requests if req["path"] == path and req["method"] == method]


def _graph_error(status, code, message):
    body = {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}}
    return Response(json.dumps(body), status=status, content_type="application/json")


def graph_error_body(code, message, error_type="OAuthException"):
    return {"error": {"message": message, "type": error_type, "code": code, "fbtrace_id": "AbCdEf"}}


def _cursor(index):
    return base64.urlsafe_b64encode(f"lead:{index}".encode()).decode()


def _uncursor(cursor):
    return int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":")[1]) if cursor else 0


def _matches(lead, filtering):
    """Apply Meta's ``[{"field": "time_created", "operator": "GREATER_THAN", "value": unix}]``."""
    for rule in json.loads(filtering or "[]"):
        created = datetime.strptime(lead["created_time"], "%Y-%m-%dT%H:%M:%S%z").astimezone(timezone.utc)
        if rule["field"] == "time_created" and rule["operator"] == "GREATER_THAN":
            if created.timestamp() <= int(rule["value"]):
                return False
    return True


def lead_object(leadgen_id, form_id, created, answers, platform="fb", **extra):
    """A Graph API lead object; ``answers`` maps question keys to one answer or a list of answers."""
    lead = {
        "id": str(leadgen_id),
        "created_time": created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
        "form_id": str(form_id),
        "platform": platform,
        "is_organic": False,
        "field_data": [{"name": key, "values": value if isinstance(value, list) else [value]}
                       for key, value in answers.items()],
    }
    lead.update(extra)
    return lead
