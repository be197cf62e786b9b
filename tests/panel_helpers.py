"""Helpers of the panel tests: ``roarm-panel`` as its own process on a free loopback port, logs in a temp folder;
hostile clients as real sockets (slow clients that hold connections open, a flood of posts)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import select
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from roarm_lab.panel.backend import PanelBackend

ROOT = Path(__file__).resolve().parents[1]
GATE_ENV = "ROARM_PANEL_TEST_GATE"
BLOCKING_PANEL = ("import sys; sys.path.insert(0, 'tests'); import panel_helpers, roarm_lab.panel.backend as backend; "
                  "backend.PanelBackend = panel_helpers.BlockingBackend; from roarm_lab.panel.cli import main; "
                  "sys.exit(main(sys.argv[1:]))")
"""``python -c`` code: the panel's own CLI (which imports its backend class when it starts) with ``BlockingBackend``."""


class BlockingBackend(PanelBackend):
    """The real backend, except that ``set_target`` holds its worker thread until the file named by
    ``ROARM_PANEL_TEST_GATE`` exists: a flood of posts then blocks every thread of the panel's pool."""

    def set_target(self, target: list[float]) -> dict[str, Any]:
        gate, end = Path(os.environ[GATE_ENV]), time.monotonic() + 300
        while not gate.exists() and time.monotonic() < end:
            time.sleep(0.05)
        return {"message": "released"}


@contextlib.contextmanager
def panel_server(logs: Path, *args: str, ready_s: float = 90.0, code: str | None = None,
                 max_files: int | None = None, env: dict[str, str] | None = None
                 ) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the panel CLI (or ``python -c code`` with the CLI's arguments); yields (url, process) once it printed
    its ready line; stops it (and checks it exits). ``max_files``: its soft limit of open files (RLIMIT_NOFILE)."""
    logs.mkdir(parents=True, exist_ok=True)
    err = open(logs / "panel.stderr", "ab")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, hard))) if max_files else None
    proc = subprocess.Popen([sys.executable, *(["-c", code] if code else ["-m", "roarm_lab.panel"]), "--port", "0",
                             "--logs", str(logs), *args], stdout=subprocess.PIPE, stderr=err, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, preexec_fn=limit)
    try:
        line = b""
        end = time.monotonic() + ready_s
        while not line.endswith(b"\n") and time.monotonic() < end and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                line += os.read(proc.stdout.fileno(), 4096)
        found = re.search(rb"url=(\S+)", line)
        assert found, f"roarm-panel did not start: {line!r} {(logs / 'panel.stderr').read_text()[-2000:]}"
        yield found.group(1).decode(), proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()


def token_of(url: str) -> str:
    """The token in the address the panel printed (``...?token=...``)."""
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("token", [""])[0]


def address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "", parts.port or 80


def request(url: str, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
            method: str | None = None, timeout: float = 120.0, token: bool = True) -> tuple[int, Any]:
    """(status, JSON or bytes) of one request, with the panel's token (``token=False``: without); error statuses
    are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        hdrs["X-Panel-Token"] = token_of(url)
    hdrs.update(headers or {})
    req = urllib.request.Request(url.split("?")[0].rstrip("/") + path, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, kind = resp.status, resp.read(), resp.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        status, raw, kind = err.code, err.read(), err.headers.get("content-type", "")
    return status, (json.loads(raw) if "json" in kind else raw)


def wait_for(what: str, check, timeout_s: float = 120.0, every_s: float = 0.5) -> Any:
    end = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < end, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(every_s)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends on ``sock`` until it closes it (``socket.timeout`` if it does not)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@contextlib.contextmanager
def slow_clients(url: str, count: int) -> Iterator[dict[str, int]]:
    """``count`` slow clients (slowloris): each connection sends the start of a request's headers, then nothing;
    one the server closes is opened again at once, as an attacker would. Yields live counts."""
    host, port = address(url)
    stats = {"open": 0, "opened": 0, "closed_by_server": 0, "connect_failed": 0}
    stop = threading.Event()
    head = f"POST /api/action/set_target HTTP/1.1\r\nHost: {host}:{port}\r\nX-Slow: ".encode()

    def run() -> None:
        sel = selectors.DefaultSelector()
        while not stop.is_set():
            while stats["open"] < count and not stop.is_set():
                try:
                    sock = socket.create_connection((host, port), timeout=1.0)
                    sock.sendall(head)
                except OSError:
                    stats["connect_failed"] += 1
                    break
                sock.setblocking(False)
                sel.register(sock, selectors.EVENT_READ)
                stats["open"] += 1
                stats["opened"] += 1
            for key, _ in sel.select(0.05):
                sel.unregister(key.fileobj)
                key.fileobj.close()
                stats["open"] -= 1
                stats["closed_by_server"] += 1
        for key in list(sel.get_map().values()):
            key.fileobj.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield stats
    finally:
        stop.set()
        thread.join(10)


def estop_latencies(url: str, presses: int, limit_s: float = 5.0) -> list[float]:
    """Seconds each emergency stop took (a new connection each press, as a person's click); the last is ``inf`` when
    the panel did not answer 200 within ``limit_s`` (no more presses then)."""
    out: list[float] = []
    while len(out) < presses and (not out or out[-1] < float("inf")):
        start = time.monotonic()
        try:
            status, _ = request(url, "/api/action/emergency_stop", {}, timeout=limit_s)
        except OSError:
            status = None
        out.append(time.monotonic() - start if status == 200 else float("inf"))
        time.sleep(0.05)
    return out


def latency_line(what: str, seconds: list[float]) -> str:
    ms = [1000 * s for s in seconds]
    return f"e-stop latency {what}: median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms (n={len(ms)})"
