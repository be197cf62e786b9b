"""The panel's web server: a Starlette app (already installed with the MCP SDK) served by uvicorn on loopback.

Threat model (docs/security.md): any local user, and any web page open in the operator's browser, can send
requests to a loopback port. So: GET never changes state; actions are ``POST /api/action/<name>`` with a JSON
object body (a cross-site form or ``text/plain`` post cannot have that content type without a CORS preflight,
which this server never grants), an ``Origin`` other than the panel's own is refused, the ``Host`` header must
name the panel (DNS rebinding), the page may not be framed (a hidden frame cannot trick a click), and a token is
required whenever one is configured (always when bound off loopback or when real-arm motion is allowed). Action
names come from a fixed table and their fields from the method's signature; nothing a page sends is run as code.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
from importlib import resources
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from roarm_lab.panel.backend import ACTIONS, PanelBackend, PanelError

log = logging.getLogger("roarm_lab.panel")
MAX_BODY_BYTES = 64 * 1024
TOKEN_HEADER = "x-panel-token"
STATIC = {"index.html": "text/html; charset=utf-8", "panel.js": "text/javascript; charset=utf-8",
          "panel.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status, headers=SECURITY_HEADERS)


def _ok(data: Any) -> JSONResponse:
    return JSONResponse(data, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


class PanelApp:
    """The routes; ``hosts`` are the Host header values that name this panel (``127.0.0.1:8780`` ...)."""

    def __init__(self, backend: PanelBackend, hosts: set[str], token: str | None = None):
        self.backend = backend
        self.hosts = {h.lower() for h in hosts}
        self.token = token
        self.app = Starlette(routes=[
            Route("/", self.static, methods=["GET"]),
            Route("/static/{name}", self.static, methods=["GET"]),
            Route("/api/overview", self.read(lambda q: backend.overview()), methods=["GET"]),
            Route("/api/state", self.read(lambda q: backend.state()), methods=["GET"]),
            Route("/api/runs", self.read(lambda q: {"runs": backend.runs(q.get("task"))}), methods=["GET"]),
            Route("/api/run", self.read(lambda q: backend.run(q.get("id", ""))), methods=["GET"]),
            Route("/api/curve", self.read(lambda q: backend.curve(q.get("run", ""))), methods=["GET"]),
            Route("/api/workspace", self.read(lambda q: backend.workspace(q.get("task"))), methods=["GET"]),
            Route("/api/frame.png", self.frame, methods=["GET"]),
            Route("/api/action/{name}", self.action, methods=["POST"]),
        ])
        self.app.add_exception_handler(404, lambda r, e: _error(404, f"no such page: {r.url.path}"))
        self.app.add_exception_handler(405, lambda r, e: _error(405, "actions are POST requests with a JSON body; "
                                                                     "pages and data are GET"))

    # ------------------------------------------------------------------ checks
    def refusal(self, request: Request, api: bool) -> JSONResponse | None:
        host = (request.headers.get("host") or "").lower()
        if host not in self.hosts:
            return _error(403, f"this panel answers to {sorted(self.hosts)[0]} only (Host {host!r} refused)")
        if api and self.token is not None:
            given = request.headers.get(TOKEN_HEADER, "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return _error(401, "this panel needs its token: open the address roarm-panel printed (it ends in "
                                   "#token=...)")
        return None

    def action_refusal(self, request: Request) -> JSONResponse | None:
        origin = request.headers.get("origin")
        if origin is not None and origin.lower().split("://", 1)[-1] not in self.hosts:
            return _error(403, f"actions from another site are refused (Origin {origin})")
        if request.headers.get("sec-fetch-site") == "cross-site":
            return _error(403, "actions from another site are refused")
        if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != "application/json":
            return _error(415, "an action's body must be a JSON object (Content-Type: application/json)")
        return None

    # ------------------------------------------------------------------ routes
    async def static(self, request: Request) -> Response:
        refused = self.refusal(request, api=False)
        if refused:
            return refused
        name = request.path_params.get("name", "index.html")
        if name not in STATIC:
            return _error(404, f"no such file: {name}")
        body = resources.files("roarm_lab.panel").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    def read(self, fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            refused = self.refusal(request, api=True)
            if refused:
                return refused
            query = dict(request.query_params)
            return await self._run(lambda: fn(query), _ok)
        return endpoint

    async def frame(self, request: Request) -> Response:
        refused = self.refusal(request, api=True)
        if refused:
            return refused
        q = request.query_params

        def size(key: str, default: int) -> int:
            try:
                return int(q.get(key, default))
            except ValueError:
                return -1

        return await self._run(lambda: self.backend.frame(q.get("camera", "iso"), size("w", 480), size("h", 360)),
                               lambda png: Response(png, media_type="image/png",
                                                    headers={**SECURITY_HEADERS, "Cache-Control": "no-store"}),
                               busy_status=503)

    async def action(self, request: Request) -> Response:
        refused = self.refusal(request, api=True) or self.action_refusal(request)
        if refused:
            return refused
        name = request.path_params["name"]
        if name not in ACTIONS:
            return _error(404, f"unknown action '{name}'; actions: {sorted(ACTIONS)}")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"request of {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
        try:
            fields = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body is not valid JSON")
        if not isinstance(fields, dict):
            return _error(400, "the body must be a JSON object of the action's fields")
        method = getattr(self.backend, ACTIONS[name])
        signature = inspect.signature(method)
        unknown = sorted(set(fields) - set(signature.parameters))
        if unknown:
            return _error(400, f"unknown field(s) {unknown} for {name}; fields: {sorted(signature.parameters)}")
        try:
            signature.bind(**fields)
        except TypeError as err:
            return _error(400, f"{name}: {err}")
        log.info("action %s %s", name, {k: v for k, v in fields.items() if k != "token"})
        return await self._run(lambda: method(**fields), lambda result: _ok({"ok": True, **result}))

    async def _run(self, fn: Any, respond: Any, busy_status: int = 400) -> Response:
        """The backend call on a worker thread (the event loop never waits on a socket or a process)."""
        try:
            result = await anyio.to_thread.run_sync(fn)
        except PanelError as err:
            return _error(busy_status, str(err))
        except Exception as err:  # never a traceback on the wire; the log has it
            log.exception("panel request failed")
            return _error(500, f"internal error ({type(err).__name__}); the panel's log has the details")
        return respond(result)
