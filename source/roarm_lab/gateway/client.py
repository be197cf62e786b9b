"""``GatewayClient``: hello with a spec check, ``infer`` with a deadline and a timeout, Lazy Pirate recovery.

A DEALER socket with LINGER 0 and a random routing id. After a timeout the socket is closed and rebuilt (a
new identity, so a late reply to the old request can never be mistaken for a new one), ``hello`` is
repeated, and the request is retried a bounded number of times. Replies whose sequence number is not the
one awaited are dropped. Every request carries the session token from ``hello`` (a server that dropped
the session answers ``no_hello``: the client says hello again once and resends). On a loopback endpoint an
``infer`` carries its send time, so the server's deadline counts time queued before it was read; and a
reply that arrives after the deadline is flagged ``deadline_miss`` here whatever the server said.
``want_joint_info=True`` asks (in ``hello``) for ``joint_names`` and ``action_scale`` from the export's policy.json
in every infer reply, so a caller can map targets to joints without a copy of the export.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

import numpy as np
import zmq

from roarm_lab.gateway.protocol import PROTOCOL_VERSION, decode_reply, encode, is_loopback, pack_array, unpack_array


class GatewayError(RuntimeError):
    """The server answered with an error (its code, message and the whole reply are kept)."""

    def __init__(self, code: str, message: str, reply: dict[str, Any] | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.reply = reply or {}


class GatewayTimeout(TimeoutError):
    pass


class GatewaySpecError(ValueError):
    """The served policy is not the one the caller expects."""


class GatewayClient:
    def __init__(self, endpoint: str = "tcp://127.0.0.1:5555", *, expected: dict[str, Any] | None = None,
                 timeout_ms: float = 1000.0, retries: int = 2, name: str = "roarm-lab-client",
                 config_hash: str | None = None, server_public_key: bytes | None = None,
                 client_keys: tuple[bytes, bytes] | None = None, admin_token: str | None = None,
                 want_joint_info: bool = False):
        self.endpoint = endpoint
        self.expected = expected or {}
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.name = name
        self.config_hash = config_hash
        self._server_key = server_public_key
        self._client_keys = client_keys
        self._admin_token = admin_token
        self.want_joint_info = bool(want_joint_info)
        self._send_time = is_loopback(endpoint)
        self.ctx = zmq.Context()
        self.socket: zmq.Socket | None = None
        self._seq = itertools.count(1)
        self.spec: dict[str, Any] = {}
        self.joint_info = False
        """The server acknowledged ``want_joint_info``: its infer replies carry joint_names and action_scale."""
        self.session: bytes | None = None
        self.deadline_ms: float | None = None
        self.stale_replies = 0
        self.reconnects = 0
        self.late_replies = 0
        self.last_rtt_ms = 0.0
        """Send to receipt of the last reply (this client's clock): what its deadline is checked against."""
        self._last_send = 0.0

    # ------------------------------------------------------------------ connection
    def __enter__(self) -> "GatewayClient":
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def connect(self) -> "GatewayClient":
        self._open()
        self.spec = self._hello()
        self._check_spec(self.spec)
        if self.want_joint_info and not self.joint_info:
            raise GatewaySpecError(f"the gateway at {self.endpoint} does not send joint_names/action_scale "
                                   "(want_joint_info): update it, or read them from the export's policy.json")
        return self

    def _open(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket = self.ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        # our own unguessable id (never a server-generated one, which starts with a zero byte)
        self.socket.setsockopt(zmq.ROUTING_ID, b"c" + secrets.token_bytes(15))
        if self._server_key is not None:
            public, secret = self._client_keys or zmq.curve_keypair()
            self.socket.curve_serverkey = self._server_key
            self.socket.curve_publickey = public
            self.socket.curve_secretkey = secret
        self.socket.connect(self.endpoint)
        self._poller = zmq.Poller()  # one per socket: Socket.poll builds a poller on every call
        self._poller.register(self.socket, zmq.POLLIN)

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None
        self.ctx.term()

    def _hello(self) -> dict[str, Any]:
        return self._take_hello(self._call(self._hello_message(), key="id"))

    def _hello_message(self) -> dict[str, Any]:
        message = {"type": "hello", "protocol_version": PROTOCOL_VERSION, "client": self.name}
        if self.want_joint_info:  # only when asked: the default hello stays as it was
            message["want_joint_info"] = True
        return message

    def _take_hello(self, reply: dict[str, Any]) -> dict[str, Any]:
        self.session = reply["session"]
        self.joint_info = reply.get("joint_info") is True
        self.deadline_ms = reply.get("deadline_ms")
        return reply["spec"]

    def _check_spec(self, spec: dict[str, Any]) -> None:
        checks = {
            "obs_size": spec["observation"]["size"], "action_size": spec.get("output_size", spec["action"]["size"]),
            "task": spec.get("task"), "config_hash": spec.get("config_hash"),
            "control_period_s": spec.get("control_period_s"), "action_names": spec["action"]["names"],
        }
        wrong = [f"{k}: server has {checks[k]!r}, expected {v!r}" for k, v in self.expected.items()
                 if k in checks and checks[k] != v]
        unknown = [k for k in self.expected if k not in checks]
        if unknown:
            raise GatewaySpecError(f"cannot check {unknown}; checkable: {sorted(checks)}")
        if wrong:
            raise GatewaySpecError("the gateway serves a different policy: " + "; ".join(wrong))

    # ------------------------------------------------------------------ requests
    def _call(self, message: dict[str, Any], key: str, timeout_ms: float | None = None) -> dict[str, Any]:
        """Send and wait for the reply whose ``key`` (id or seq) matches; rebuild and retry on timeout."""
        timeout_ms = self.timeout_ms if timeout_ms is None else timeout_ms
        token = next(self._seq)
        message = {**message, key: token} if key == "id" else {**message, "id": token}
        match_key, match = (key, message[key])
        said_hello_again = False
        attempt = 0
        while attempt <= self.retries:
            if attempt > 0:  # Lazy Pirate: new socket (new identity), hello again, then resend
                self.reconnects += 1
                self._open()
                if message["type"] != "hello":
                    try:
                        self.spec = self._hello_raw(timeout_ms)
                    except GatewayTimeout:
                        attempt += 1
                        continue
            reply = self._exchange(message, match_key, match, timeout_ms)
            if reply is None:
                attempt += 1
                continue
            if not reply.get("ok"):
                err = reply.get("error", {})
                code = err.get("code", "unknown")
                if code == "no_hello" and message["type"] != "hello" and not said_hello_again:
                    said_hello_again = True  # the server dropped our session (idle, or it restarted): once more
                    self.spec = self._hello_raw(timeout_ms)
                    continue
                raise GatewayError(code, err.get("message", ""), reply)
            return reply
        raise GatewayTimeout(f"no reply from {self.endpoint} to {message['type']} after {self.retries + 1} attempts "
                             f"of {timeout_ms:.0f} ms")

    def _exchange(self, message: dict[str, Any], match_key: str, match: Any, timeout_ms: float) -> dict[str, Any] | None:
        """One send and the wait for its reply (None on a timeout); the session and send time are current."""
        if message["type"] != "hello":
            message["session"] = self.session
            if self._admin_token is not None and message["type"] in ("reload", "shutdown"):
                message["token"] = self._admin_token
        self._last_send = time.monotonic()
        if "sent" in message:
            message["sent"] = self._last_send
        self.socket.send(encode(message))
        end = time.monotonic() + timeout_ms / 1000.0
        while True:
            left = (end - time.monotonic()) * 1000.0
            if left <= 0 or not self._poller.poll(left):
                return None
            frame = self.socket.recv()
            self.last_rtt_ms = (time.monotonic() - self._last_send) * 1000.0
            reply = decode_reply(frame)
            if reply.get(match_key) != match:
                self.stale_replies += 1
                continue
            return reply

    def _hello_raw(self, timeout_ms: float) -> dict[str, Any]:
        saved, self.retries = self.retries, 0
        try:
            return self._take_hello(self._call(self._hello_message(), "id", timeout_ms))
        finally:
            self.retries = saved

    def infer(self, obs: np.ndarray | dict[str, np.ndarray], deadline_ms: float | None = None,
              timeout_ms: float | None = None) -> dict[str, Any]:
        """Joint targets for one observation; returns target, action, seq, flags and server timings (and
        joint_names, action_scale with ``want_joint_info``)."""
        if isinstance(obs, dict):
            payload: Any = {k: pack_array(np.asarray(v).reshape(-1)) for k, v in obs.items()}
        else:
            payload = pack_array(np.asarray(obs).reshape(-1))
        message: dict[str, Any] = {"type": "infer", "seq": next(self._seq), "obs": payload}
        if deadline_ms is not None:
            message["deadline_ms"] = deadline_ms
        if self.config_hash is not None:
            message["config_hash"] = self.config_hash
        if self._send_time:
            message["sent"] = 0.0  # set at each send
        reply = self._call(message, key="seq", timeout_ms=timeout_ms)
        limit = deadline_ms if deadline_ms is not None else self.deadline_ms
        if limit is not None and self.last_rtt_ms > limit and not reply["flags"]["deadline_miss"]:
            reply["flags"]["deadline_miss"] = True  # it came, but too late to use: what the caller must know
            reply["flags"]["late_reply"] = True
            self.late_replies += 1
        reply["target"] = unpack_array(reply["target"], "target")
        reply["action"] = unpack_array(reply["action"], "action")
        return reply

    def ping(self, timeout_ms: float | None = None) -> dict[str, Any]:
        return self._call({"type": "ping"}, key="id", timeout_ms=timeout_ms)

    def stats(self) -> dict[str, Any]:
        return self._call({"type": "stats"}, key="id")["stats"]

    def reset(self) -> None:
        self._call({"type": "reset"}, key="id")

    def reload(self, path: str) -> dict[str, Any]:
        """Admin: serve another export (needs ``admin_token``; the folder must be inside the server's reload roots)."""
        return self._call({"type": "reload", "path": str(path)}, key="id", timeout_ms=max(self.timeout_ms, 10000))["spec"]

    def shutdown(self) -> None:
        self._call({"type": "shutdown"}, key="id")
