"""An asyncio HTTP/1.1 client for the panel server's JSON API, on the standard library only.

Kit's Python has no project dependencies, and every call must be a coroutine on Kit's loop (omni.kit.async_engine),
so this opens one connection per request with ``asyncio.open_connection`` and a timeout on every wait. Errors
come back as ``PanelUnavailable`` (no answer) or ``PanelRefused`` (the server's one-line message).

Every request carries the panel's token (``X-Panel-Token``): given, or in the address roarm-panel printed
(``...?token=``), or else read, at each request, from the file roarm-panel writes for its port (``token_file``):
a panel started after Kit, or started again with a new token, is found without a restart of Kit.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_REPLY_BYTES = 8 * 1024 * 1024
CHECKOUT = Path(__file__).resolve().parents[3]
"""The checkout this extension lives in (``exts/roarm_lab_panel/roarm_lab_panel/``): its ``logs/`` is the panel's
default logs folder."""


class PanelUnavailable(ConnectionError):
    """The panel server did not answer (not running, wrong address, or too slow)."""


class PanelRefused(RuntimeError):
    """The panel server answered with an error; the message says what to do."""


def token_file(url: str) -> Path:
    """Where roarm-panel, on the port of ``url`` with its default logs folder, writes its token."""
    return CHECKOUT / "logs" / "panel" / f"{urlsplit(url if '://' in url else f'http://{url}').port or 80}.token"


def read_token_file(path: str | Path) -> str:
    """The token in ``path``: a regular file of this user's, private to it (as roarm-panel writes it)."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise ValueError(f"{path} must be a regular file of yours, readable by you only (chmod 600 {path})")
        with open(path, encoding="utf-8") as handle:
            token = handle.read(1024).strip()
    except OSError as err:
        raise ValueError(f"no token file {path} ({err.strerror or err}): is roarm-panel running on that port with "
                         "that logs folder? (or set the extension's token_file)") from None
    if len(token) < 32:
        raise ValueError(f"{path} holds no panel token (at least 32 characters)")
    return token


class PanelClient:
    def __init__(self, url: str, token: str | None = None, timeout_s: float = 10.0):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"panel url {url!r} must look like http://127.0.0.1:8780/")
        self.host, self.port = parts.hostname, parts.port or 80
        self.url = f"http://{self.host}:{self.port}/"
        self.token = token or parse_qs(parts.query).get("token", [None])[0]
        self.token_file: Path | None = None if self.token else token_file(url)
        """Read at each request when no token was given (the extension's ``token_file`` setting replaces it)."""
        self.timeout_s = timeout_s

    async def get(self, path: str, timeout_s: float | None = None) -> dict[str, Any]:
        return await self._request("GET", path, None, timeout_s)

    async def action(self, name: str, timeout_s: float | None = None, **fields: Any) -> dict[str, Any]:
        return await self._request("POST", f"/api/action/{name}", fields, timeout_s)

    async def _request(self, method: str, path: str, body: dict[str, Any] | None,
                       timeout_s: float | None) -> dict[str, Any]:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(self._exchange(method, path, body), timeout)
        except asyncio.TimeoutError:
            raise PanelUnavailable(f"no answer from the panel server at {self.url} in {timeout:.0f} s") from None
        except OSError as err:
            raise PanelUnavailable(f"the panel server at {self.url} cannot be reached ({err.strerror or err}); "
                                   "start it with roarm-panel") from None

    async def _exchange(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: close",
                "Accept: application/json"]
        token, problem = self.token, ""
        if token is None and self.token_file is not None:
            try:
                token = read_token_file(self.token_file)
            except ValueError as err:  # asked anyway: a server that is not there says so first
                problem = str(err)
        if token:
            head.append(f"X-Panel-Token: {token}")
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
            await writer.drain()
            raw = await reader.read(MAX_REPLY_BYTES + 1)
            while raw and len(raw) <= MAX_REPLY_BYTES:
                more = await reader.read(MAX_REPLY_BYTES + 1 - len(raw))
                if not more:
                    break
                raw += more
        finally:
            writer.close()
        try:
            return _parse(raw)
        except PanelRefused as err:
            if problem:
                raise PanelRefused(f"{err} ({problem})") from None
            raise


def _parse(raw: bytes) -> dict[str, Any]:
    header, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise PanelUnavailable("the panel server closed the connection without a complete answer")
    lines = header.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise PanelUnavailable(f"not an HTTP answer: {lines[0][:80]!r}") from None
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if fields.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PanelRefused(f"the panel server answered {status} without JSON") from None
    if status >= 400 or (isinstance(data, dict) and data.get("ok") is False):
        raise PanelRefused(str(data.get("error") if isinstance(data, dict) else data))
    if not isinstance(data, dict):
        raise PanelRefused("the panel server answered with something other than a JSON object")
    return data


def _unchunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out
