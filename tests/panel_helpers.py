"""Helpers of the panel tests: ``roarm-panel`` as its own process on a free loopback port, logs in a temp folder."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def panel_server(logs: Path, *args: str, ready_s: float = 90.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the panel CLI; yields (url, process) once it printed its ready line; stops it (and checks it exits)."""
    logs.mkdir(parents=True, exist_ok=True)
    err = open(logs / "panel.stderr", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "roarm_lab.panel", "--port", "0", "--logs", str(logs), *args],
                            stdout=subprocess.PIPE, stderr=err, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
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


def request(url: str, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
            method: str | None = None, timeout: float = 120.0) -> tuple[int, Any]:
    """(status, JSON or bytes) of one request; error statuses are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url.split("#")[0].rstrip("/") + path, data=data, headers=hdrs, method=method)
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
