"""Helper processes that serve while their parent lives: the simulator service and the policy gateway.

Unlike jobs (which must outlive the MCP server), a service is tied to its parent: on Linux the kernel sends it
SIGTERM when the parent dies (``PR_SET_PDEATHSIG``), so a crashed MCP server leaves no simulator behind. The
kernel ties that signal to the *thread* that forked, and the MCP SDK runs tools on pool threads that end when
idle, so every service is forked by one spawner thread that lives as long as the process. A service reports
readiness with one stdout line matched by ``ready``; its stderr goes to a log file.
"""

from __future__ import annotations

import ctypes
import os
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable


class ServiceError(RuntimeError):
    pass


def die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class _Spawner:
    """One thread that forks every service, so that the parent-death signal outlives the calling threads."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, make: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="service-spawner", daemon=True)
                self._thread.start()
        reply: queue.Queue = queue.Queue(maxsize=1)
        self._jobs.put((make, reply))
        ok, value = reply.get()
        if not ok:
            raise value
        return value

    def _loop(self) -> None:
        while True:
            make, reply = self._jobs.get()
            try:
                reply.put((True, make()))
            except BaseException as err:  # handed back to the caller's thread
                reply.put((False, err))


_SPAWNER = _Spawner()


class ServiceProcess:
    def __init__(self, argv: list[str], ready: str, log_path: Path, *, cwd: Path | None = None,
                 env: dict[str, str] | None = None, ready_timeout_s: float = 120.0):
        self.argv = list(argv)
        self.ready = re.compile(ready)
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.env = env
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.match: re.Match[str] | None = None
        self.started = 0.0

    def start(self) -> "ServiceProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.proc = _SPAWNER.run(lambda: subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, cwd=self.cwd, env=self.env,
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None))
        finally:
            log.close()
        self.started = time.time()
        deadline = time.monotonic() + self.ready_timeout_s
        out = b""
        while b"\n" not in out:
            left = deadline - time.monotonic()
            if self.proc.poll() is not None or left <= 0:
                why = (f"exited with code {self.proc.returncode}" if self.proc.returncode is not None
                       else f"was not ready within {self.ready_timeout_s:.0f} s")
                self.stop()
                raise ServiceError(f"{Path(self.argv[1]).name if len(self.argv) > 1 else self.argv[0]} {why}: "
                                   f"{self.log_tail() or out.decode(errors='replace')[-500:]}")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.2))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                out += chunk
        first, _, rest = out.partition(b"\n")
        line = first.decode(errors="replace").strip()
        self.match = self.ready.search(line)
        if self.match is None:
            self.stop()
            raise ServiceError(f"unexpected first line from {self.argv}: {line!r}")
        # whatever it prints later goes to its log: an unread pipe would fill and block the service
        threading.Thread(target=self._drain, args=(rest,), name="service-stdout", daemon=True).start()
        return self

    def _drain(self, pending: bytes) -> None:
        stdout = self.proc.stdout
        with open(self.log_path, "ab") as log:
            log.write(pending)
            try:
                for chunk in iter(lambda: stdout.read1(4096), b""):
                    log.write(chunk)
                    log.flush()
            except (OSError, ValueError):  # closed by stop()
                pass

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])
