"""The gateway server: one ROUTER socket, inference on the serving thread, a watchdog thread for deadlines.

Fast path (no thread hand-off): the serving thread receives a request, runs the policy with the socket lock
released (ONNX Runtime and TorchScript release the GIL), takes the lock back and replies. A thread hand-off
costs ~150 us per direction on a small machine, more than the whole inference, so the policy is not run on
a separate worker.

Safety path: a watchdog thread sleeps until the earliest unanswered deadline. If inference is still running
then, it takes the socket lock, answers with the safe action (hold the client's joint targets) flagged
``deadline_miss``, and keeps serving the socket (``ping``, ``stats``, new requests queued, their deadlines
watched) until the serving thread is back; the late result is dropped. The serving thread only waits on the
socket while nothing is pending, so the watchdog never waits long for the lock.
"""

from __future__ import annotations

import collections
import heapq
import ipaddress
import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import zmq

from roarm_lab.gateway.eventlog import EventLog
from roarm_lab.gateway.metrics import PrometheusExporter
from roarm_lab.gateway.policy import ClientTargets, LoadedPolicy, PolicyLoadError
from roarm_lab.gateway.protocol import (PROTOCOL_VERSION, SUPPORTED_VERSIONS, ErrorCode, ProtocolError, decode,
                                        encode, error_reply, pack_array, unpack_array)
from roarm_lab.gateway.stats import GatewayStats, SlaMonitor


@dataclass
class GatewayConfig:
    bind: str = "tcp://127.0.0.1:5555"
    deadline_ms: float = 20.0
    reply_margin_ms: float = 1.0
    """The watchdog answers this long before the client's deadline, so the safe action arrives in time."""
    allow_admin: bool = True
    allow_shutdown: bool = False
    curve_secret_key_file: str | None = None
    event_log: str | None = None
    event_log_max_bytes: int = 10 * 1024 * 1024
    event_log_backups: int = 5
    metrics_port: int | None = None
    metrics_textfile: str | None = None
    sla_p95_us: float = 2000.0
    sla_miss_rate: float = 0.01
    sla_cooldown_s: float = 60.0
    window: int = 1000
    debug_inference_delay_ms: float = 0.0
    """Added to every inference (benchmarks of the deadline watchdog only)."""


@dataclass
class _Pending:
    envelope: list[bytes]
    identity: bytes
    seq: int
    request_id: Any
    obs: np.ndarray
    received: float
    deadline: float
    hash_mismatch: bool
    answered: bool = False


@dataclass
class _Client:
    hello: bool = False
    targets: ClientTargets = field(default_factory=ClientTargets)


def is_loopback(endpoint: str) -> bool:
    """True for tcp endpoints on 127.0.0.0/8, ::1 or localhost, and for ipc/inproc."""
    parsed = urlparse(endpoint)
    if parsed.scheme in ("ipc", "inproc"):
        return True
    host = (parsed.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class GatewayServer:
    def __init__(self, policy: LoadedPolicy, config: GatewayConfig | None = None):
        self.cfg = config or GatewayConfig()
        self.policy = policy
        self.stats = GatewayStats(self.cfg.window)
        self.sla = SlaMonitor(self.cfg.sla_p95_us, self.cfg.sla_miss_rate, self.cfg.sla_cooldown_s)
        self.events = EventLog(self.cfg.event_log, self.cfg.event_log_max_bytes, self.cfg.event_log_backups)
        self.metrics = PrometheusExporter(self.cfg.metrics_port, self.cfg.metrics_textfile)
        self.ctx = zmq.Context()
        self.socket = self.ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self._configure_security()
        self.socket.bind(self.cfg.bind)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._lock = threading.Lock()  # the socket and all serving state; never held while a policy runs
        self._backlog: collections.deque[tuple[_Pending, LoadedPolicy]] = collections.deque()
        self._clients: dict[bytes, _Client] = {}
        self._pending: dict[tuple[bytes, int], _Pending] = {}
        self._deadlines: list[tuple[float, int, tuple[bytes, int]]] = []
        self._watch_deadline = math.inf  # earliest unanswered deadline (read by the watchdog without the lock)
        self._watchdog_wake = math.inf  # when the watchdog will look next
        self._watchdog_cond = threading.Condition()
        self._inferring = False
        self._tie = itertools.count()
        self._running = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._watchdog = threading.Thread(target=self._watch, name="gateway-watchdog", daemon=True)
        self._watchdog.start()
        self._last_tick = time.monotonic()
        self.events.write("start", endpoint=self.endpoint, policy=str(policy.path), backend=policy.backend,
                          config_hash=policy.config_hash)

    # ------------------------------------------------------------------ setup
    def _configure_security(self) -> None:
        secret = self.cfg.curve_secret_key_file
        if secret:
            import zmq.auth

            public, private = zmq.auth.load_certificate(secret)
            if private is None:
                raise ValueError(f"{secret} holds no secret key: pass the server's .key_secret file")
            self.socket.curve_secretkey = private
            self.socket.curve_publickey = public
            self.socket.curve_server = True
        elif not is_loopback(self.cfg.bind):
            raise ValueError(f"refusing to bind {self.cfg.bind} without encryption: a non-loopback bind needs CURVE "
                             "keys (make them with `python -c \"import zmq.auth; zmq.auth.create_certificates('keys', "
                             "'server')\"` and pass --curve-secret-key keys/server.key_secret)")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "GatewayServer":
        """Serve on a background thread (tests, embedding); ``serve_forever`` blocks instead."""
        self._thread = threading.Thread(target=self.serve_forever, name="gateway-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._watchdog_cond:
            self._watchdog_cond.notify()
        self._watchdog.join(2.0)
        with self._lock:
            self.socket.close(linger=0)
        self.ctx.term()
        self.events.write("stop", stats=self.stats.snapshot())
        self.events.close()
        self.metrics.close()

    def serve_forever(self) -> None:
        """Serve until ``stop`` or an allowed ``shutdown``; the caller closes (``stop`` or ``_close``)."""
        self._running = True
        while self._running:
            with self._lock:
                job = self._backlog.popleft() if self._backlog else None
                if job is None:
                    # nothing is pending here, so the watchdog has no reason to want the lock while we wait
                    self._receive_one(timeout_ms=50)
                    job = self._backlog.popleft() if self._backlog else None
                self._maybe_tick()
            if job is not None:
                self._run(*job)

    def _receive_one(self, timeout_ms: int) -> None:
        """Receive and handle at most one message (the lock is held); infer requests join the backlog."""
        try:
            frames = self.socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            if not self.socket.poll(timeout_ms):
                return
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
        self._handle(frames)

    def _maybe_tick(self) -> None:
        now = time.monotonic()
        if now - self._last_tick > 1.0:
            self._last_tick = now
            self._tick()

    # ------------------------------------------------------------------ inference (serving thread)
    def _run(self, pending: _Pending, policy: LoadedPolicy) -> None:
        """Run the policy without the lock, then reply unless the watchdog already answered."""
        if pending.answered:  # expired while it waited in the backlog
            return
        self._inferring = True
        started = time.monotonic()
        try:
            if self.cfg.debug_inference_delay_ms:
                time.sleep(self.cfg.debug_inference_delay_ms / 1000.0)
            action, error = policy.infer(pending.obs), None
        except Exception as err:  # a broken model must not kill the server
            action, error = None, f"{type(err).__name__}: {err}"
        finished = time.monotonic()
        self._inferring = False
        with self._lock:
            if pending.answered:
                self.stats.late_results += 1
                return
            self._forget(pending)
            if error is not None:
                self._error(pending.envelope, pending.identity, ErrorCode.INTERNAL, f"inference failed ({error})",
                            pending.request_id, seq=pending.seq)
                return
            client = self._clients.setdefault(pending.identity, _Client())
            target, clipped = policy.to_targets(action, pending.obs, client.targets)
            timings = {"queue_us": (started - pending.received) * 1e6, "inference_us": (finished - started) * 1e6,
                       "total_us": (time.monotonic() - pending.received) * 1e6}
            self._send(pending.envelope, {
                "ok": True, "type": "action", "id": pending.request_id, "seq": pending.seq,
                "action": pack_array(action), "target": pack_array(target), "timings": timings,
                "flags": {"deadline_miss": False, "clipped": clipped, "any_clipped": any(clipped),
                          "hash_mismatch": pending.hash_mismatch}})
            self.stats.record_infer(pending.identity, timings["queue_us"], timings["inference_us"],
                                    timings["total_us"], missed=False)
            self.metrics.observe_infer(timings["total_us"], missed=False)

    # ------------------------------------------------------------------ watchdog thread
    def _watch(self) -> None:
        while not self._closed:
            try:
                self._watch_once()
            except Exception as err:  # the watchdog must outlive any bug in what it calls
                self.events.write("internal_error", where="watchdog", error=f"{type(err).__name__}: {err}")
                time.sleep(0.001)

    def _watch_once(self) -> None:
        """Sleep until the earliest deadline; if it has passed, answer it and serve while the policy runs."""
        with self._watchdog_cond:
            now = time.monotonic()
            due = self._watch_deadline
            if due > now:
                # with nothing pending, look again after one default deadline: requests with the default
                # deadline then never need to wake this thread
                wake = min(due, now + self.cfg.deadline_ms / 1000.0)
                self._watchdog_wake = wake
                self._watchdog_cond.wait(wake - now)
                self._watchdog_wake = math.inf
                return
        with self._lock:
            if self._closed:
                return
            self._expire_deadlines()
            # the policy is still running: keep the socket served until the serving thread is back
            while self._inferring and self._running and not self._closed:
                left_ms = (self._watch_deadline - time.monotonic()) * 1000.0
                self._receive_one(timeout_ms=5 if left_ms > 5 else max(0, math.ceil(left_ms)))
                self._expire_deadlines()
                self._maybe_tick()

    def _add_deadline(self, pending: _Pending) -> None:
        heapq.heappush(self._deadlines, (pending.deadline, next(self._tie), (pending.identity, pending.seq)))
        if pending.deadline < self._watch_deadline:
            self._watch_deadline = pending.deadline
        if pending.deadline < self._watchdog_wake:
            with self._watchdog_cond:
                self._watchdog_cond.notify()

    def _refresh_watch(self) -> None:
        while self._deadlines and self._deadlines[0][2] not in self._pending:
            heapq.heappop(self._deadlines)
        self._watch_deadline = self._deadlines[0][0] if self._deadlines else math.inf

    def _expire_deadlines(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, key = heapq.heappop(self._deadlines)
            pending = self._pending.pop(key, None)
            if pending is None or pending.answered:
                continue
            pending.answered = True
            client = self._clients.setdefault(pending.identity, _Client())
            hold = self.policy.hold_targets(pending.obs, client.targets)
            total_us = (now - pending.received) * 1e6
            self._send(pending.envelope, {
                "ok": True, "type": "action", "id": pending.request_id, "seq": pending.seq,
                "action": pack_array(np.zeros(self.policy.action_size, np.float32)), "target": pack_array(hold),
                "timings": {"queue_us": total_us, "inference_us": 0.0, "total_us": total_us},
                "flags": {"deadline_miss": True, "clipped": [False] * len(hold), "any_clipped": False,
                          "hash_mismatch": pending.hash_mismatch}})
            self.stats.record_infer(pending.identity, total_us, 0.0, total_us, missed=True)
            self.metrics.observe_infer(total_us, missed=True)
            self.events.write("deadline_miss", id=pending.request_id, client=pending.identity.hex(), seq=pending.seq,
                              waited_us=total_us)
        self._refresh_watch()

    def _forget(self, pending: _Pending) -> None:
        pending.answered = True
        self._pending.pop((pending.identity, pending.seq), None)
        self._refresh_watch()

    # ------------------------------------------------------------------ requests
    def _handle(self, frames: list[bytes]) -> None:
        if len(frames) < 2:
            return
        identity, envelope, payload = frames[0], frames[:-1], frames[-1]
        request_id, msg = None, None
        try:
            msg = decode(payload)
            request_id = msg.get("id")
            kind = msg["type"]
            self.stats.requests[kind] += 1
            self.metrics.count_request(kind)
            getattr(self, f"_on_{kind}")(envelope, identity, msg)
        except ProtocolError as err:
            self._error(envelope, identity, err.code, err.message, request_id,
                        seq=msg.get("seq") if isinstance(msg, dict) else None)
        except Exception as err:  # never a traceback on the wire, never a dead loop
            self.events.write("internal_error", id=request_id, error=f"{type(err).__name__}: {err}")
            self._error(envelope, identity, ErrorCode.INTERNAL, f"internal error ({type(err).__name__})", request_id)

    def _on_hello(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        version = msg.get("protocol_version")
        if version not in SUPPORTED_VERSIONS:
            raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION,
                                f"protocol version {version!r} is not supported; this server speaks {list(SUPPORTED_VERSIONS)}")
        client = self._clients.setdefault(identity, _Client())
        client.hello = True
        client.targets = ClientTargets()
        self.events.write("hello", id=msg.get("id"), client=identity.hex(), name=str(msg.get("client", ""))[:64])
        self._send(envelope, {"ok": True, "type": "hello", "id": msg.get("id"), "protocol_version": PROTOCOL_VERSION,
                              "spec": self.policy.spec(), "deadline_ms": self.cfg.deadline_ms})

    def _on_infer(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        client = self._clients.get(identity)
        if client is None or not client.hello:
            raise ProtocolError(ErrorCode.NO_HELLO, "send hello (with protocol_version) before infer")
        seq = msg.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "infer needs an integer seq")
        raw = msg.get("obs")
        if isinstance(raw, dict) and "data" not in raw:
            obs = self.policy.assemble({k: unpack_array(v, f"obs.{k}") for k, v in raw.items()})
        else:
            obs = self.policy.assemble(unpack_array(raw, "obs"))
        deadline_ms = msg.get("deadline_ms", self.cfg.deadline_ms)
        if not isinstance(deadline_ms, (int, float)) or isinstance(deadline_ms, bool) or not 0 < deadline_ms <= 60000:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "deadline_ms must be a number in (0, 60000]")
        client_hash = msg.get("config_hash")
        mismatch = client_hash is not None and client_hash != self.policy.config_hash
        if mismatch:
            self.stats.client(identity).hash_mismatches += 1
            self.events.write("hash_mismatch", id=msg.get("id"), client=identity.hex(), seq=seq,
                              client_hash=str(client_hash)[:64], policy_hash=self.policy.config_hash)
        key = (identity, seq)
        if key in self._pending:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"seq {seq} is already in flight on this connection")
        now = time.monotonic()
        watch_s = max(deadline_ms - self.cfg.reply_margin_ms, 0.5 * deadline_ms) / 1000.0
        pending = _Pending(envelope, identity, seq, msg.get("id"), obs, now, now + watch_s, mismatch)
        self._pending[key] = pending
        self._add_deadline(pending)
        self._backlog.append((pending, self.policy))  # the policy of this moment: a reload does not affect it

    def _on_ping(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        self._send(envelope, {"ok": True, "type": "pong", "id": msg.get("id"), "time": time.time()})

    def _on_stats(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        self._send(envelope, {"ok": True, "type": "stats", "id": msg.get("id"), "stats": self.stats.snapshot()})

    def _on_reset(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        client = self._clients.setdefault(identity, _Client())
        client.targets = ClientTargets()
        if identity in self.stats.clients:
            self.stats.clients[identity].total.reset()
        self._send(envelope, {"ok": True, "type": "reset", "id": msg.get("id")})

    def _on_reload(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        if not self.cfg.allow_admin:
            raise ProtocolError(ErrorCode.FORBIDDEN, "reload is an admin request and admin requests are disabled")
        path = msg.get("path")
        if not isinstance(path, str):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "reload needs a string path to an exported/ folder")
        try:
            new = LoadedPolicy.load(Path(path), msg.get("backend", self.policy.backend))
        except (PolicyLoadError, OSError, KeyError, ValueError) as err:
            raise ProtocolError(ErrorCode.RELOAD_FAILED, f"reload of {path} failed: {err}") from None
        if (new.obs_size, new.action_size) != (self.policy.obs_size, self.policy.action_size):
            raise ProtocolError(ErrorCode.RELOAD_FAILED, f"reload of {path} refused: sizes {new.obs_size}/"
                                f"{new.action_size} differ from the served {self.policy.obs_size}/{self.policy.action_size}")
        old = self.policy
        self.policy = new  # requests already queued keep the policy they were queued with
        self.events.write("reload", id=msg.get("id"), old=str(old.path), new=str(new.path),
                          config_hash=new.config_hash)
        self._send(envelope, {"ok": True, "type": "reload", "id": msg.get("id"), "spec": new.spec()})

    def _on_shutdown(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        if not (self.cfg.allow_admin and self.cfg.allow_shutdown):
            raise ProtocolError(ErrorCode.FORBIDDEN, "shutdown is disabled on this server (start it with --allow-shutdown)")
        self._send(envelope, {"ok": True, "type": "shutdown", "id": msg.get("id")})
        self.events.write("shutdown", id=msg.get("id"), client=identity.hex())
        self._running = False

    # ------------------------------------------------------------------ replies
    def _error(self, envelope: list[bytes], identity: bytes, code: ErrorCode, message: str, request_id: Any,
               seq: Any = None) -> None:
        self.stats.errors[code.value] += 1
        self.stats.client(identity).errors += 1
        self.metrics.count_error(code.value)
        self.events.write("error", id=request_id, client=identity.hex(), code=code.value, message=message)
        reply = error_reply(code, message, request_id)
        if isinstance(seq, int):
            reply["seq"] = seq
        self._send(envelope, reply)

    def _send(self, envelope: list[bytes], reply: dict) -> None:
        try:
            self.socket.send_multipart([*envelope, encode(reply)], zmq.NOBLOCK)
        except zmq.Again:  # the client's queue is full or it is gone: drop, do not block the loop
            self.stats.errors["send_dropped"] += 1

    def _tick(self) -> None:
        alert = self.sla.check(self.stats)
        if alert is not None:
            self.events.write("sla_alert", **alert)
            self.metrics.count_alert()
        self.metrics.update_from(self.stats)
