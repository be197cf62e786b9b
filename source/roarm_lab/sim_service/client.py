"""``SimClient``: requests to the simulator service with a timeout; replies matched by id.

Every request carries the service's secret (``secret``; docs/sim_service.md, "Access") and this client's id
(``client``: random per instance unless given, never shown by the service) with a label for messages
(``client_name``): an environment this client starts belongs to it, and only it may change or end it.

A DEALER socket with LINGER 0. Simulator requests change state (a step is not idempotent), so a timeout is
not retried: the socket is rebuilt (a new identity: a late reply can never be taken for the next one) and
``SimTimeout`` tells the caller, who can ask ``status``.
"""

from __future__ import annotations

import itertools
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from roarm_lab.sim_service.protocol import PROTOCOL_VERSION, decode_reply, encode


class SimError(RuntimeError):
    """The service answered with an error (code and message kept)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SimTimeout(TimeoutError):
    pass


class SimClient:
    def __init__(self, endpoint: str, secret: str | None = None, timeout_ms: float = 10000.0, *,
                 name: str | None = None, client_id: str | None = None):
        """``client_id``: pass a saved one to act again as the client that started an environment (after a
        restart); ``name``: how the service names this client to others (default: program and pid)."""
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.client_id = client_id or secrets.token_hex(16)
        self.name = name or f"{Path(sys.argv[0] or 'python').name} pid {os.getpid()}"
        self._auth = {"client": self.client_id, "client_name": self.name}
        if secret is not None:
            self._auth["secret"] = secret
        self.ctx = zmq.Context()
        self.socket: zmq.Socket | None = None
        self._ids = itertools.count(1)
        self._open()

    def _open(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket = self.ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(self.endpoint)

    def call(self, kind: str, timeout_ms: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one request and return its reply (``SimError`` for an error reply, ``SimTimeout``)."""
        token = next(self._ids)
        self.socket.send(encode({**fields, **self._auth, "type": kind, "id": token}))
        end = time.monotonic() + (self.timeout_ms if timeout_ms is None else timeout_ms) / 1000.0
        while True:
            left = (end - time.monotonic()) * 1000.0
            if left <= 0 or not self.socket.poll(left):
                self._open()
                raise SimTimeout(f"no reply from the simulator at {self.endpoint} to '{kind}' in "
                                 f"{(self.timeout_ms if timeout_ms is None else timeout_ms) / 1000:.0f} s")
            reply = decode_reply(self.socket.recv())
            if reply.get("id") != token:
                continue  # a late reply to an earlier request
            if not reply.get("ok"):
                err = reply.get("error") or {}
                raise SimError(str(err.get("code", "unknown")), str(err.get("message", "")))
            return reply

    def hello(self) -> dict[str, Any]:
        return self.call("hello", protocol_version=PROTOCOL_VERSION)

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None
        self.ctx.term()

    def __enter__(self) -> "SimClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
