"""A local stand-in for Meta's Graph API (Cloud API messages, media, templates), speaking its wire format.

Tests script its answers per path and read back the exact requests it received.
"""

import json
import threading
from collections import deque

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class FakeGraphServer:
    def __init__(self):
        self.requests = []
        self._scripted = {}
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._thread.join(5)

    def respond(self, path, *answers):
        """Queue answers for ``path``: (status, json_or_bytes[, content_type]); the last one repeats."""
        self._scripted[path] = deque(answers)

    def add_media(self, media_id, content, mime_type="image/jpeg"):
        """Serve a media object the way Meta does: id -> short-lived URL -> bytes."""
        download_path = f"/download/{media_id}"
        self.respond(f"/{media_id}", (200, {
            "url": self.url + download_path, "mime_type": mime_type, "sha256": "x",
            "file_size": len(content), "id": media_id, "messaging_product": "whatsapp"}))
        self.respond(download_path, (200, content, mime_type))

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
