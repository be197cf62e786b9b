"""The arm's Wi-Fi interface: ``GET /js?json=<command>`` served on 127.0.0.1, answered by the emulated firmware."""

from __future__ import annotations

import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any


def make_handler(emulator: Any) -> type[BaseHTTPRequestHandler]:
    """A request handler bound to ``emulator`` (its ``handle_http(query) -> (status, body)``)."""
    class Handler(BaseHTTPRequestHandler):
        """GET /js?json=... as on the arm's web server."""

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = urllib.parse.urlsplit(self.path)
            if parts.path != "/js":
                status, body = 404, b"only /js?json=<command> is served\n"
            else:
                status, body = emulator.handle_http(parts.query)
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # a driver polling at 20 Hz would flood the terminal

    return Handler
