"""A werkzeug app served on a free local port in a thread, for the fakes of external APIs."""

import threading

from werkzeug.serving import make_server


class LocalServer:
    """Serves ``self._app`` at ``self.url`` between ``__enter__`` and ``__exit__``."""

    def __init__(self):
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._thread.join(5)

    def _app(self, environ, start_response):
        raise NotImplementedError
