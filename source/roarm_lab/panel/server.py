"""The panel's HTTP server: uvicorn's h11 protocol with the limits a hostile local client calls for.

uvicorn closes idle keep-alive connections, but it has no header or body timeout and no cap on connections:
slow clients (slowloris) held every file descriptor, accept failed with EMFILE, the emergency stop went
unanswered and the log filled with tracebacks. Here a request's headers must arrive within
``HEADER_TIMEOUT_S`` and its body within ``BODY_TIMEOUT_S``; above ``MAX_CONNECTIONS`` open connections the
oldest that are not being answered (still sending a request, or idle) are closed, once every new connection's
first bytes have been read: a request sent whole, the stop's, is being answered by then and is never closed,
however many slow clients come and go. Those being answered are bounded by the app (``web.MAX_WAITING``); the
open-files limit is raised so the moments above the cap never reach EMFILE. Log records are rate-limited per
message (``RateLimit``).
"""

from __future__ import annotations

import logging
import resource
import socket
import sys
import threading
import time
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("roarm_lab.panel")
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 128
BACKLOG = 512
"""Connections the kernel queues for accept. asyncio accepts a queue's worth per loop turn and closes an evicted
connection a few turns later, so several queues' worth of sockets are open for a moment above the cap."""
OPEN_FILES = 65536
"""The soft open-files limit is raised to this (or the hard limit): room for those moments, never EMFILE."""


class GuardedH11Protocol(H11Protocol):
    """One connection: a deadline on the request in progress, and the connection cap (see the module)."""

    _sweep: Any = None
    _round = 0
    """The pending eviction and how many have run (class-wide: one server per process)."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.opened, self.made_in = time.monotonic(), GuardedH11Protocol._round
        self._phase: str | None = None
        self._timer: Any = None
        self._watch()
        if len(self.connections) > MAX_CONNECTIONS:
            self._evict_soon()

    def _evict_soon(self) -> None:
        # a 0 s timer runs after the next loop turn's reads
        if GuardedH11Protocol._sweep is None:
            GuardedH11Protocol._sweep = self.loop.call_later(0, self._evict)

    def _evict(self) -> None:
        """Close the oldest connections not being answered, down to the cap; only those made before the previous
        round, whose first bytes have been read: a request sent whole on connecting (a stop) is being answered by
        then, however fast new connections come."""
        GuardedH11Protocol._sweep = None
        done, GuardedH11Protocol._round = GuardedH11Protocol._round, GuardedH11Protocol._round + 1
        waiting = sorted((c for c in self.connections if not c.transport.is_closing() and not c.answering()),
                         key=lambda c: c.opened)
        excess = sum(not c.transport.is_closing() for c in self.connections) - MAX_CONNECTIONS
        victims = [c for c in waiting if c.made_in < done][:max(0, excess)]
        for victim in victims:
            victim.transport.abort()
        if victims:
            log.warning("more than %d connections open: closed the %d oldest that were not being answered",
                        MAX_CONNECTIONS, len(victims))
        if len(victims) < excess and len(victims) < len(waiting):
            self._evict_soon()  # the rest are too new to judge yet

    def answering(self) -> bool:
        """The whole request is in and its answer is not complete: the one state that is never evicted."""
        return (self.cycle is not None and not self.cycle.response_complete
                and self.conn.their_state in (h11.DONE, h11.MUST_CLOSE))

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = None
        if self._timer is not None:
            self._timer.cancel()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Start the deadline of the phase the client is in (headers, body), or stop it once the request is in."""
        state = self.conn.their_state
        phase = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if phase == self._phase or self.transport.is_closing():
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = phase
        if phase is not None:
            self._timer = self.loop.call_later(HEADER_TIMEOUT_S if phase == "headers" else BODY_TIMEOUT_S,
                                               self._expired, phase)

    def _expired(self, phase: str) -> None:
        self._timer = None
        log.warning("closed a connection whose request %s did not arrive within %.0f s", phase,
                    HEADER_TIMEOUT_S if phase == "headers" else BODY_TIMEOUT_S)
        self.transport.abort()


class RateLimit(logging.Filter):
    """At most ``burst`` records of one message (its template, not its arguments) per ``window_s``; the next one let
    through says how many were dropped. A flood of bad requests or slow clients must not fill the disk."""

    def __init__(self, burst: int = 10, window_s: float = 60.0):
        super().__init__()
        self.burst, self.window_s = burst, window_s
        self._seen: dict[tuple[str, int, str], tuple[float, int, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key, now = (record.name, record.levelno, str(record.msg)), time.monotonic()
        with self._lock:
            if len(self._seen) > 1000:
                self._seen.clear()
            start, count, dropped = self._seen.get(key, (now, 0, 0))
            if now - start >= self.window_s:
                start, count = now, 0
            if count >= self.burst:
                self._seen[key] = (start, count, dropped + 1)
                return False
            self._seen[key] = (start, count + 1, 0)
        if dropped:
            record.msg = f"{record.msg} [{dropped} more like this were not logged]"
        return True


def log_to_stderr() -> None:
    """The panel's log on stderr, uvicorn's and asyncio's records included, rate-limited."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RateLimit())
    logging.basicConfig(level=logging.INFO, handlers=[handler],
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def serve(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` on the listening ``sock`` until SIGINT/SIGTERM."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES if hard == resource.RLIM_INFINITY else min(OPEN_FILES, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    config = uvicorn.Config(app, http=GuardedH11Protocol, log_config=None, log_level="warning", access_log=False,
                            lifespan="off", backlog=BACKLOG)
    uvicorn.Server(config).run(sockets=[sock])
