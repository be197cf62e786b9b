"""The gateway server: a ROUTER socket loop that never runs inference itself.

Requests are decoded and validated on the loop; inference runs on a worker thread that wakes the loop
through an inproc socket when a result is ready. Every infer request has a deadline: if the result is not
back in time the loop answers with the safe action (hold the client's current joint targets), flagged
``deadline_miss``, and drops the late result. ``ping`` and ``stats`` are answered by the loop at any time.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import math
import queue
import threading
import time
import uuid
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
        wake = f"inproc://gateway-wake-{uuid.uuid4().hex}"
        self._wake_rx = self.ctx.socket(zmq.PAIR)
        self._wake_rx.bind(wake)
        self._wake_tx = self.ctx.socket(zmq.PAIR)
        self._wake_tx.connect(wake)
        self._wake_lock = threading.Lock()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._clients: dict[bytes, _Client] = {}
        self._pending: dict[tuple[bytes, int], _Pending] = {}
        self._deadlines: list[tuple[float, int, tuple[bytes, int]]] = []
        self._tie = itertools.count()
        self._running = False
        self._thread: threading.Thread | None = None
        self._worker = threading.Thread(target=self._work, name="gateway-inference", daemon=True)
        self._worker.start()
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
        self._thread = threading.Thread(target=self.serve_forever, name="gateway-loop", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def _close(self) -> None:
        self._jobs.put(None)
        self._worker.join(2.0)
        for sock in (self.socket, self._wake_rx, self._wake_tx):
            sock.close(linger=0)
        self.ctx.term()
        self.events.write("stop", stats=self.stats.snapshot())
        self.events.close()
        self.metrics.close()

    def serve_forever(self) -> None:
        self._running = True
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self._wake_rx, zmq.POLLIN)
        last_tick = time.monotonic()
        while self._running:
            # answered requests leave their deadline in the heap: drop them so they never set the timeout
            while self._deadlines and self._deadlines[0][2] not in self._pending:
                heapq.heappop(self._deadlines)
            timeout = 100
            if self._deadlines:  # whole milliseconds, rounded up: never a busy spin before a deadline
                timeout = max(0, min(timeout, math.ceil((self._deadlines[0][0] - time.monotonic()) * 1000.0)))
            events = dict(poller.poll(timeout))
            if self._wake_rx in events:
                while self._wake_rx.poll(0):
                    self._wake_rx.recv()
                self._drain_results()
            if self.socket in events:
                for _ in range(1000):  # bounded burst, then check deadlines again
                    try:
                        frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=True)
                    except zmq.Again:
                        break
                    self._handle(frames)
            self._expire_deadlines()
            now = time.monotonic()
            if now - last_tick > 1.0:
                last_tick = now
                self._tick()

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            pending, policy = job
            start = time.monotonic()
            try:
                if self.cfg.debug_inference_delay_ms:
                    time.sleep(self.cfg.debug_inference_delay_ms / 1000.0)
                action = policy.infer(pending.obs)
                error = None
            except Exception as err:  # a broken model must not kill the worker
                action, error = None, f"{type(err).__name__}: {err}"
            self._results.put((pending, policy, action, error, start, time.monotonic()))
            with self._wake_lock:
                self._wake_tx.send(b"", zmq.NOBLOCK)

    def _drain_results(self) -> None:
        while True:
            try:
                pending, policy, action, error, started, finished = self._results.get_nowait()
            except queue.Empty:
                return
            if pending.answered:
                self.stats.late_results += 1
                continue
            self._forget(pending)
            if error is not None:
                self._error(pending.envelope, pending.identity, ErrorCode.INTERNAL, f"inference failed ({error})",
                            pending.request_id, seq=pending.seq)
                continue
            client = self._clients.setdefault(pending.identity, _Client())
            target, clipped = policy.to_targets(action, pending.obs, client.targets)
            now = time.monotonic()
            timings = {"queue_us": (started - pending.received) * 1e6, "inference_us": (finished - started) * 1e6,
                       "total_us": (now - pending.received) * 1e6}
            self.stats.record_infer(pending.identity, timings["queue_us"], timings["inference_us"],
                                    timings["total_us"], missed=False)
            self.metrics.observe_infer(timings["total_us"], missed=False)
            self._send(pending.envelope, {
                "ok": True, "type": "action", "id": pending.request_id, "seq": pending.seq,
                "action": pack_array(action), "target": pack_array(target), "timings": timings,
                "flags": {"deadline_miss": False, "clipped": clipped, "any_clipped": any(clipped),
                          "hash_mismatch": pending.hash_mismatch}})

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
            self.stats.record_infer(pending.identity, total_us, 0.0, total_us, missed=True)
            self.metrics.observe_infer(total_us, missed=True)
            self.events.write("deadline_miss", id=pending.request_id, client=pending.identity.hex(), seq=pending.seq,
                              waited_us=total_us)
            self._send(pending.envelope, {
                "ok": True, "type": "action", "id": pending.request_id, "seq": pending.seq,
                "action": pack_array(np.zeros(self.policy.action_size, np.float32)), "target": pack_array(hold),
                "timings": {"queue_us": total_us, "inference_us": 0.0, "total_us": total_us},
                "flags": {"deadline_miss": True, "clipped": [False] * len(hold), "any_clipped": False,
                          "hash_mismatch": pending.hash_mismatch}})

    def _forget(self, pending: _Pending) -> None:
        pending.answered = True
        self._pending.pop((pending.identity, pending.seq), None)

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
        pending = _Pending(envelope, identity, seq, msg.get("id"), obs, now, now + deadline_ms / 1000.0, mismatch)
        self._pending[key] = pending
        heapq.heappush(self._deadlines, (pending.deadline, next(self._tie), key))
        self._jobs.put((pending, self.policy))  # the policy of this moment: a reload does not affect it

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
