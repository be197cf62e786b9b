"""The panel's web server: a Starlette app (already installed with the MCP SDK) served by uvicorn on loopback.

Threat model (docs/security.md): any local user, and any web page open in the operator's browser, can send
requests to a loopback port. So: every request needs this launch's token (the ``X-Panel-Token`` header, or the
HttpOnly, SameSite=Strict cookie the page gets for the address ``roarm-panel`` printed, ``/?token=...``); GET
never changes state; actions are ``POST /api/action/<name>`` with a JSON object body (a cross-site form or
``text/plain`` post cannot have that content type without a CORS preflight, which this server never grants), an
``Origin`` other than the panel's own is refused (a page on another loopback port is same-site and gets the
cookie), the ``Host`` header must name the panel (DNS rebinding), and the page may not be framed. Bodies are
capped before they are read. Action names come from a fixed table and their fields from the method's signature;
nothing a page sends is run as code. The emergency stop runs on a thread of its own: it never waits for the
worker threads that every other request shares (``server.py`` keeps slow clients from holding the connections).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from roarm_lab.panel.backend import ACTIONS, PanelBackend, PanelError

log = logging.getLogger("roarm_lab.panel")
MAX_BODY_BYTES = 64 * 1024
MAX_WAITING = 16
"""Requests that may wait for a worker thread (all taken) before more are told the panel is busy: bounds the
connections being answered (``server.py`` never evicts those)."""
TOKEN_HEADER = "x-panel-token"
ESTOP = "emergency_stop"
STATIC = {"index.html": "text/html; charset=utf-8", "panel.js": "text/javascript; charset=utf-8",
          "panel.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


def _error(status: int, message: str, close: bool = False) -> JSONResponse:
    """A refusal in one line; ``close``: end the connection (a body left unread must not be read next)."""
    headers = {**SECURITY_HEADERS, "Connection": "close"} if close else SECURITY_HEADERS
    return JSONResponse({"ok": False, "error": message}, status_code=status, headers=headers)


def _ok(data: Any) -> JSONResponse:
    return JSONResponse(data, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


class PanelApp:
    """The routes; ``hosts`` are the Host header values that name this panel (``127.0.0.1:8780`` ...), ``cookie``
    the name of its token cookie (browsers keep cookies per host, not per port: one name per panel port)."""

    def __init__(self, backend: PanelBackend, hosts: set[str], token: str, cookie: str = "roarm-panel"):
        self.backend = backend
        self.hosts = {h.lower() for h in hosts}
        self.token = token
        self.cookie = cookie
        self.estop = ThreadPoolExecutor(1, thread_name_prefix="panel-estop")
        self.calls = 0
        """Backend calls on the shared worker threads, running or waiting for one."""
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
    def host_refusal(self, request: Request) -> JSONResponse | None:
        host = (request.headers.get("host") or "").lower()
        if host not in self.hosts:
            return _error(403, f"this panel answers to {sorted(self.hosts)[0]} only (Host {host!r} refused)")
        return None

    def refusal(self, request: Request, api: bool) -> Response | None:
        refused = self.host_refusal(request)
        if refused:
            return refused
        given = request.headers.get(TOKEN_HEADER) or request.cookies.get(self.cookie) or ""
        if not self.is_token(given):
            message = ("this panel needs its token: open the address roarm-panel printed (it ends in ?token=...), or "
                       "send the X-Panel-Token header")
            return _error(401, message) if api else PlainTextResponse(message, 401, headers=SECURITY_HEADERS)
        return None

    def is_token(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())

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
        name = request.path_params.get("name", "index.html")
        offered = request.query_params.get("token")
        if name == "index.html" and offered is not None:
            return self.host_refusal(request) or self.login(offered)
        refused = self.refusal(request, api=False)
        if refused:
            return refused
        if name not in STATIC:
            return _error(404, f"no such file: {name}")
        body = resources.files("roarm_lab.panel").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    def login(self, offered: str) -> Response:
        """The printed address: its token becomes a cookie scripts cannot read, and leaves the address bar."""
        if not self.is_token(offered):
            return PlainTextResponse("this is not the token of this panel's launch (roarm-panel prints a new "
                                     "address each start)", 401, headers=SECURITY_HEADERS)
        page = RedirectResponse("/", 303, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})
        page.set_cookie(self.cookie, self.token, httponly=True, samesite="strict", path="/")
        return page

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
        body = await self._body(request)
        if isinstance(body, Response):
            return body
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
        # the name (from ACTIONS) in the message itself: the log's rate limit counts each action on its own
        log.info(f"action {name} %s", {k: v for k, v in fields.items() if k != "token"})
        return await self._run(lambda: method(**fields), lambda result: _ok({"ok": True, **result}),
                               own_thread=name == ESTOP)

    @staticmethod
    async def _body(request: Request) -> bytes | Response:
        """The body, refused by its Content-Length before any of it is read, or as soon as more than the limit came."""
        declared = request.headers.get("content-length")
        if declared is not None and int(declared) > MAX_BODY_BYTES:
            return _error(413, f"a body of {declared} bytes; the limit is {MAX_BODY_BYTES}", close=True)
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    return _error(413, f"a body of more than {MAX_BODY_BYTES} bytes; the limit is {MAX_BODY_BYTES}",
                                  close=True)
        except ClientDisconnect:
            return _error(400, "the client went away before its body arrived", close=True)
        return bytes(body)

    async def _run(self, fn: Any, respond: Any, busy_status: int = 400, own_thread: bool = False) -> Response:
        """The backend call on a worker thread (the event loop never waits on a socket or a process); the stop on
        its own thread, never behind the shared ones; when that many requests wait for one, the panel is busy."""
        try:
            if own_thread:
                result = await asyncio.get_running_loop().run_in_executor(self.estop, fn)
            elif self.calls >= anyio.to_thread.current_default_thread_limiter().total_tokens + MAX_WAITING:
                return _error(503, f"the panel is busy: every worker thread is taken and {MAX_WAITING} requests wait "
                                   "for one; try again in a moment (the EMERGENCY STOP is never held up)")
            else:
                self.calls += 1
                try:
                    result = await anyio.to_thread.run_sync(fn)
                finally:
                    self.calls -= 1
        except PanelError as err:
            return _error(busy_status, str(err))
        except Exception as err:  # never a traceback on the wire; the log has it
            log.exception("panel request failed")
            return _error(500, f"internal error ({type(err).__name__}); the panel's log has the details")
        return respond(result)
