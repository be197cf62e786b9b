"""The gateway server: one ROUTER socket, inference on the serving thread, a watchdog thread for deadlines.

Fast path (no thread hand-off): the serving thread receives a request (and whatever else has arrived by
then, up to ``max_batch``), runs the policy on them as one batch with the socket lock released (ONNX Runtime
and TorchScript release the GIL), takes the lock back and replies to each. A thread hand-off
costs ~150 us per direction on a small machine, more than the whole inference, so the policy is not run on
a separate worker.

Safety path: a watchdog thread (``watchdog.py``) sleeps until the earliest unanswered deadline. If inference is still running
then, it takes the socket lock, answers with the safe action (hold the client's joint targets) flagged
``deadline_miss``, and keeps serving the socket (``ping``, ``stats``, new requests queued, their deadlines
watched) until the serving thread is back; the late result is dropped. The serving thread only waits on the
socket while nothing is pending, so the watchdog never waits long for the lock.

Hostile peers (docs/security.md): client state lives in sessions bound to a token (``sessions.py``), not to
a routing id; ZeroMQ caps frame sizes and queues; sessions, in-flight requests and the backlog are bounded;
a reload loads on its own thread.
"""

from __future__ import annotations

import collections
import ctypes
import math
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import zmq
from msgspec import UNSET

from roarm_lab.gateway.admin import allowed_export, load_admin_token, token_matches
from roarm_lab.gateway.eventlog import EventLog
from roarm_lab.gateway.infer_codec import decode_infer
from roarm_lab.gateway.forensics import MAX_FIELD_CHARS, HashMismatchLog, forensic_path
from roarm_lab.gateway.metrics import PrometheusExporter
from roarm_lab.policy import LoadedPolicy, NotFiniteError, ObservationSizeError, PolicyLoadError
from roarm_lab.policy.compiled import finite_check
from roarm_lab.gateway.protocol import (MAX_FRAME_BYTES, PROTOCOL_VERSION, ErrorCode, ProtocolError, array_values,
                                        check_version, decode, encode, error_reply, is_loopback, numpy_all_finite,
                                        pack_array, unpack_array)
from roarm_lab.gateway.sessions import Session, SessionTable
from roarm_lab.gateway.stats import GatewayStats, SlaMonitor, client_entry
from roarm_lab.gateway.watchdog import DeadlineWatchdog

_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)  # plain ints: pyzmq's enum arithmetic costs per request

MAX_SENT_AGE_S = 60.0
"""A client's ``sent`` time older than this (or in the future) is not believed."""


@dataclass
class GatewayConfig:
    bind: str = "tcp://127.0.0.1:5555"
    deadline_ms: float = 20.0
    reply_margin_ms: float = 1.0
    """The watchdog answers this long before the client's deadline, so the safe action arrives in time."""
    admin_token_file: str | None = None
    """Admin requests (reload, shutdown) must carry this file's token; None: admin requests are refused."""
    allow_shutdown: bool = False
    reload_roots: tuple[str, ...] = ()
    """A reload may only read an export folder inside one of these."""
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
    max_sessions: int = 1024
    session_idle_s: float = 300.0
    max_in_flight: int = 8
    """Infer requests one session may have waiting; more are refused ``overloaded``."""
    max_backlog: int = 256
    max_batch: int = 16
    """Requests that have already arrived run through the policy together, at most this many (1: one by one)."""
    rcv_hwm: int = 8
    """ZeroMQ's receive queue per peer, in messages (each frame at most ``MAX_FRAME_BYTES``); a client with more
    in flight than ``max_in_flight`` gains nothing from a longer queue."""
    snd_hwm: int = 64
    event_rate_per_s: float = 20.0
    """Per-request events (errors, misses, hellos) written per second at most; the rest are counted."""
    latency_event_s: float = 10.0
    """A ``latency`` event (count, misses, percentiles, histogram of the replies since the last) this often; 0: none.
    What ``roarm-gateway analyze`` plots; nothing is written while no request is answered."""
    hash_mismatch_lines_per_client: int = 10
    """``hash_mismatch_events.jsonl`` (beside the event log): lines per client (session) a minute; then a count."""
    hash_mismatch_lines_per_min: int = 120
    """The same file: lines a minute of all clients together."""
    hash_mismatch_log_max_bytes: int = 10 * 1024 * 1024
    """The same file stops growing at this size (it is evidence: never rotated away)."""
    debug_inference_delay_ms: float = 0.0
    """Added to every inference (benchmarks of the deadline watchdog only)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.deadline_ms) and self.deadline_ms > 0):
            raise ValueError(f"deadline_ms must be a positive number of milliseconds, got {self.deadline_ms}")
        if not (math.isfinite(self.latency_event_s) and self.latency_event_s >= 0):
            raise ValueError(f"latency_event_s must be a number of seconds >= 0 (0: off), got {self.latency_event_s}")
        for name in ("max_batch", "max_in_flight", "max_sessions", "max_backlog", "hash_mismatch_lines_per_client",
                     "hash_mismatch_lines_per_min", "hash_mismatch_log_max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


@dataclass
class _Pending:
    envelope: list[bytes]
    session: Session
    seq: int
    request_id: Any
    obs: np.ndarray
    received: float
    """When the client sent it (its clock, on this machine) or, failing that, when the server read it."""
    deadline: float
    """When the watchdog answers (the client's deadline less the reply margin)."""
    due: float
    """The client's deadline: a reply after it is flagged deadline_miss, whoever sends it."""
    hash_mismatch: bool
    answered: bool = False


def _seed_routing_ids() -> None:
    """Seed libc's rand(), which libzmq uses for the first id a ROUTER generates (unseeded: always 0x6b8b4567).

    A peer that claims the id the server will generate next makes libzmq abort the process; an unpredictable
    start leaves it a 1 in 2^32 guess per claimed id.
    """
    try:
        ctypes.CDLL(None).srand(ctypes.c_uint(secrets.randbits(32)))
    except (OSError, AttributeError):  # no libc symbol table (not Linux/macOS): the ids stay libzmq's
        pass


class GatewayServer:
    def __init__(self, policy: LoadedPolicy, config: GatewayConfig | None = None):
        self.cfg = config or GatewayConfig()
        self.policy = policy
        self._admin_token = load_admin_token(self.cfg.admin_token_file) if self.cfg.admin_token_file else None
        self._reload_roots = [Path(r).resolve() for r in self.cfg.reload_roots]
        self._local = is_loopback(self.cfg.bind)  # a client's `sent` time is on this machine's clock
        self.stats = GatewayStats(self.cfg.window)
        self.sessions = SessionTable(self.cfg.max_sessions, self.cfg.session_idle_s)
        self.sla = SlaMonitor(self.cfg.sla_p95_us, self.cfg.sla_miss_rate, self.cfg.sla_cooldown_s)
        self.events = EventLog(self.cfg.event_log, self.cfg.event_log_max_bytes, self.cfg.event_log_backups)
        self.hash_log = HashMismatchLog(
            forensic_path(self.cfg.event_log), self.cfg.hash_mismatch_lines_per_client,
            self.cfg.hash_mismatch_lines_per_min, self.cfg.hash_mismatch_log_max_bytes,
            on_error=lambda message: self.events.write("internal_error", where="hash_mismatch_log", error=message))
        self.metrics = PrometheusExporter(self.cfg.metrics_port, self.cfg.metrics_textfile)
        _seed_routing_ids()
        self.ctx = zmq.Context()
        self.socket = self.ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        # ROUTER_HANDOVER on: with it off, libzmq keeps every refused duplicate-id connection that sent data
        # (~18 MB/s from one local peer, measured). Taking over a live id gets a peer neither the session (it
        # needs the token) nor a way to find the id: GatewayClient's ids are 15 random bytes, never shown
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        self.socket.setsockopt(zmq.RCVHWM, self.cfg.rcv_hwm)
        self.socket.setsockopt(zmq.SNDHWM, self.cfg.snd_hwm)
        try:
            self._configure_security()
            self._bind()
        except ValueError:
            self.socket.close(linger=0)
            self.ctx.term()
            self.metrics.close()
            self.events.close()
            raise
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._poller = zmq.Poller()  # one for the server's life: Socket.poll builds a poller on every call
        self._poller.register(self.socket, zmq.POLLIN)
        self._lock = threading.Lock()  # the socket and all serving state; never held while a policy runs
        self._backlog: collections.deque[tuple[_Pending, LoadedPolicy]] = collections.deque()
        self._pending: dict[tuple[bytes, int], _Pending] = {}
        self._all_finite = finite_check() or numpy_all_finite  # the compiled loop where numba loads
        self._rows = np.empty((self.cfg.max_batch, policy.obs_size), np.float32)
        """The serving thread's batch buffer (only it touches it; a reload keeps the observation size)."""
        self._inferring = False
        self._reloading = False
        self._running = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._event_budget = self.cfg.event_rate_per_s
        self._events_suppressed = 0
        self._handlers = {"hello": self._on_hello, "infer": self._on_infer, "ping": self._on_ping,
                          "stats": self._on_stats, "reset": self._on_reset, "reload": self._on_reload,
                          "shutdown": self._on_shutdown}
        """The request loop's dispatch: one handler per request type of the protocol (docs/gateway.md)."""
        self._watchdog = DeadlineWatchdog(self.cfg.deadline_ms / 1000.0, self._on_deadline, self._on_watchdog_error)
        self._last_tick = time.monotonic()
        self._last_latency_event = self._last_tick
        self.events.write("start", endpoint=self.endpoint, policy=str(policy.path), backend=policy.backend,
                          inference=policy.inference,
                          config_hash=policy.config_hash, admin=self._admin_token is not None,
                          reload_roots=[str(r) for r in self._reload_roots])

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

    def _bind(self) -> None:
        try:
            self.socket.bind(self.cfg.bind)
        except zmq.ZMQError as err:
            raise ValueError(f"cannot bind {self.cfg.bind} ({err}): is another gateway running there? Pass another "
                             "--bind port (or tcp://127.0.0.1:0 for any free one)") from None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "GatewayServer":
        """Serve on a background thread (tests, embedding); ``serve_forever`` blocks instead."""
        self._thread = threading.Thread(target=self.serve_forever, name="gateway-serve", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask ``serve_forever`` to return after the message at hand (safe from a signal handler)."""
        self._running = False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (the background thread of ``start``, if any) and close."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self.close()

    def close(self) -> None:
        """Release the socket, the watchdog and the logs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._watchdog.close()
        with self._lock:
            self.socket.close(linger=0)
        self.ctx.term()
        if self.cfg.latency_event_s:
            self._write_latency(time.monotonic())  # the last, partial interval
        self.hash_log.close()
        self.events.write("stop", stats=self.stats.snapshot())
        self.events.close()
        self.metrics.close()

    def serve_forever(self) -> None:
        """Serve until ``request_stop`` or an allowed ``shutdown``; the caller then calls ``close``."""
        self._running = True
        while self._running:
            with self._lock:
                if not self._backlog:
                    # nothing is pending here, so the watchdog has no reason to want the lock while we wait
                    self._receive_one(timeout_ms=50)
                self._receive_waiting(self.cfg.max_batch)
                batch = self._take_batch()
                self._maybe_tick()
            if batch is not None:
                self._run(*batch)

    def _receive_one(self, timeout_ms: int) -> bool:
        """Receive and handle at most one message (the lock is held); infer requests join the backlog."""
        # a message waiting (under load): read it at once; none (one paced client): wait in poll. Either way no
        # failed non-blocking read, whose exception costs more than the check
        if not self.socket.getsockopt(_EVENTS) & _POLLIN and (timeout_ms <= 0 or not self._poller.poll(timeout_ms)):
            return False
        try:
            frames = self.socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return False
        self._handle(frames)
        return True

    def _receive_waiting(self, limit: int) -> None:
        """Handle what has already arrived (at most ``limit`` messages), without waiting: under load several
        clients' requests then run as one batch."""
        for _ in range(limit):
            if len(self._backlog) >= limit or not self._receive_one(timeout_ms=0):
                return

    def _take_batch(self) -> tuple[list[_Pending], LoadedPolicy] | None:
        """Up to ``max_batch`` waiting requests queued with the same policy (a reload splits batches)."""
        batch: list[_Pending] = []
        policy = None
        while self._backlog and len(batch) < self.cfg.max_batch:
            pending, queued_with = self._backlog[0]
            if policy is not None and queued_with is not policy:
                break
            self._backlog.popleft()
            if not pending.answered:  # else it expired while it waited
                batch.append(pending)
                policy = queued_with
        return (batch, policy) if batch else None

    def _maybe_tick(self) -> None:
        now = time.monotonic()
        if now - self._last_tick > 1.0:
            self._last_tick = now
            self._tick(now)

    # ------------------------------------------------------------------ inference (serving thread)
    def _run(self, batch: list[_Pending], policy: LoadedPolicy) -> None:
        """Run the policy on the batch without the lock, then reply to each request the watchdog has not answered.

        One request or sixteen, each gets the action of its own observation (the policy is stateless), and the
        replies go out in arrival order, so a session's targets integrate as if its requests had run one by one.
        """
        self._inferring = True
        started = time.monotonic()
        try:
            if self.cfg.debug_inference_delay_ms:
                time.sleep(self.cfg.debug_inference_delay_ms / 1000.0)
            actions, error = policy.infer_batch(self._batch_rows(batch)), None
        except Exception as err:  # a broken model must not kill the server
            actions, error = None, f"{type(err).__name__}: {err}"
        finished = time.monotonic()
        self._inferring = False
        with self._lock:
            for i, pending in enumerate(batch):
                self._reply(pending, policy, None if actions is None else actions[i], error, started, finished)

    def _batch_rows(self, batch: list[_Pending]) -> np.ndarray:
        """The batch's observations as one (N, obs) array: a view for one request, else rows of a buffer kept for it."""
        if len(batch) == 1:
            return batch[0].obs.reshape(1, -1)
        rows = self._rows[: len(batch)]
        for i, pending in enumerate(batch):
            rows[i] = pending.obs
        return rows

    def _reply(self, pending: _Pending, policy: LoadedPolicy, action: np.ndarray | None, error: str | None,
               started: float, finished: float) -> None:
        """The action reply to one request (the lock is held), unless the watchdog answered it already."""
        if pending.answered:
            self.stats.late_results += 1
            return
        self._forget(pending)
        session = pending.session
        if error is not None:
            self._error(pending.envelope, ErrorCode.INTERNAL, f"inference failed ({error})", pending.request_id,
                        seq=pending.seq, session=session)
            return
        try:
            target, clipped = policy.to_targets(action, pending.obs, session.targets)
        except NotFiniteError as err:  # a coded error and a hold; the session's targets are untouched
            hold = policy.hold_targets(pending.obs, session.targets, commit=False)
            self._error(pending.envelope, ErrorCode.NOT_FINITE, err.message, pending.request_id, seq=pending.seq,
                        session=session, extra={"hold": pack_array(hold), **self._joint_info(session, policy)})
            return
        now = time.monotonic()
        total = now - pending.received
        missed = now > pending.due  # the watchdog lost the race for the lock: late all the same
        timings = {"queue_us": (started - pending.received) * 1e6, "inference_us": (finished - started) * 1e6,
                   "total_us": total * 1e6}
        self._send(pending.envelope, {
            "ok": True, "type": "action", "id": pending.request_id, "seq": pending.seq,
            "action": pack_array(action), "target": pack_array(target), "timings": timings,
            "flags": {"deadline_miss": missed, "clipped": clipped, "any_clipped": any(clipped),
                      "hash_mismatch": pending.hash_mismatch}, **self._joint_info(session, policy)})
        self.stats.record_infer(session.stats, timings["queue_us"], timings["inference_us"],
                                timings["total_us"], missed=missed)
        self.metrics.observe_infer(timings["total_us"], missed=missed)

    # ------------------------------------------------------------------ deadlines (watchdog thread)
    def _on_deadline(self) -> None:
        """The earliest deadline has passed: answer what expired, and serve while the policy is still running."""
        with self._lock:
            if self._closed:
                return
            self._expire_deadlines()
            while self._inferring and self._running and not self._closed:
                left_ms = (self._watchdog.earliest - time.monotonic()) * 1000.0
                self._receive_one(timeout_ms=5 if left_ms > 5 else max(0, math.ceil(left_ms)))
                self._expire_deadlines()
                self._maybe_tick()

    def _on_watchdog_error(self, err: Exception) -> None:
        self.events.write("internal_error", where="watchdog", error=f"{type(err).__name__}: {err}")

    def _expire_deadlines(self) -> None:
        now = time.monotonic()
        for key in self._watchdog.pop_due(now):
            pending = self._pending.get(key)
            if pending is not None and not pending.answered:
                self._forget(pending, refresh=False)
                self._answer_hold(pending, now)
        self._watchdog.refresh(self._pending.__contains__)

    def _answer_hold(self, pending: _Pending, now: float) -> None:
        """The safe action for a request whose deadline passed: the session's current targets, flagged."""
        pending.answered = True
        hold = self.policy.hold_targets(pending.obs, pending.session.targets)
        total_us = (now - pending.received) * 1e6
        self._send(pending.envelope, {
            "ok": True, "type": "action", "id": pending.request_id, "seq": pending.seq,
            "action": pack_array(np.zeros(self.policy.action_size, np.float32)), "target": pack_array(hold),
            "timings": {"queue_us": total_us, "inference_us": 0.0, "total_us": total_us},
            "flags": {"deadline_miss": True, "clipped": [False] * len(hold), "any_clipped": False,
                      "hash_mismatch": pending.hash_mismatch}, **self._joint_info(pending.session, self.policy)})
        self.stats.record_infer(pending.session.stats, total_us, 0.0, total_us, missed=True)
        self.metrics.observe_infer(total_us, missed=True)
        self._event("deadline_miss", id=pending.request_id, client=pending.session.label, seq=pending.seq,
                    waited_us=total_us)

    @staticmethod
    def _joint_info(session: Session, policy: LoadedPolicy) -> dict[str, Any]:
        """``joint_names`` and ``action_scale`` of the export's policy.json, for a session that asked in its hello
        (an empty map otherwise: the reply of a client that did not ask stays exactly as it was)."""
        if not session.joint_info:
            return {}
        act = policy.meta["action"]
        return {"joint_names": [str(n) for n in act["joint_names"]], "action_scale": [float(v) for v in act["scale"]]}

    def _forget(self, pending: _Pending, refresh: bool = True) -> None:
        pending.answered = True
        if self._pending.pop((pending.session.token, pending.seq), None) is not None:
            pending.session.in_flight -= 1
        if refresh:
            self._watchdog.refresh(self._pending.__contains__)

    # ------------------------------------------------------------------ requests
    def _handle(self, frames: list[bytes]) -> None:
        # DEALER: [id, payload]; REQ: [id, b"", payload]. Anything else is dropped unanswered: a reply would
        # echo an envelope of the peer's choosing
        if not 2 <= len(frames) <= 3 or (len(frames) == 3 and frames[1]):
            self.stats.errors["bad_envelope"] += 1
            return
        identity, envelope, payload = frames[0], frames[:-1], frames[-1]
        fast = decode_infer(payload)  # the fast path: a well-formed flat infer request, typed in compiled code
        typed, array = fast if fast is not None else (None, None)
        request_id, msg = None, None
        try:
            if typed is not None:
                request_id = typed.id
                self._count_request("infer")
                self._admit_infer(envelope, self._session(identity, typed.session), typed.seq, typed.id,
                                  lambda: self.policy.assemble(array_values(array.shape, array.data, "obs",
                                                                            self._all_finite)),
                                  self.cfg.deadline_ms if typed.deadline_ms is UNSET else typed.deadline_ms,
                                  typed.sent, typed.config_hash)
                return
            msg = decode(payload)
            request_id = msg.get("id")
            kind = msg["type"]
            self._count_request(kind)
            self._handlers[kind](envelope, identity, msg)
        except ProtocolError as err:
            seq = typed.seq if typed is not None else msg.get("seq") if isinstance(msg, dict) else None
            self._error(envelope, err.code, err.message, request_id if err.request_id is None else err.request_id,
                        seq=seq)
        except Exception as err:  # never a traceback on the wire, never a dead loop
            self.events.write("internal_error", id=request_id, error=f"{type(err).__name__}: {err}")
            self._error(envelope, ErrorCode.INTERNAL, f"internal error ({type(err).__name__})", request_id)

    def _count_request(self, kind: str) -> None:
        self.stats.requests[kind] += 1
        self.metrics.count_request(kind)

    def _session(self, identity: bytes, token: Any) -> Session:
        session = self.sessions.get(token, identity, time.monotonic())
        if session is None:
            raise ProtocolError(ErrorCode.NO_HELLO, "no session: send hello (with protocol_version) and pass the "
                                "session it returns with every request")
        return session

    def _on_hello(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        check_version(msg.get("protocol_version"))
        want_joint_info = msg.get("want_joint_info", False)
        if not isinstance(want_joint_info, bool):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"want_joint_info must be true or false, got "
                                f"{want_joint_info!r:.40} (true: every infer reply carries joint_names and action_scale)")
        session = self.sessions.open(identity, str(msg.get("client", ""))[:64], time.monotonic())
        session.joint_info = want_joint_info
        self.stats.sessions = len(self.sessions)
        self._event("hello", id=msg.get("id"), client=session.label, name=session.name)
        reply = {"ok": True, "type": "hello", "id": msg.get("id"), "protocol_version": PROTOCOL_VERSION,
                 "session": session.token, "spec": self.policy.spec(), "deadline_ms": self.cfg.deadline_ms}
        if want_joint_info:  # the acknowledgement: a client that asked can tell an older server apart
            reply["joint_info"] = True
        self._send(envelope, reply)

    def _on_infer(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        """The reference path of an infer request: every field checked by hand, in the protocol's order."""
        session = self._session(identity, msg.get("session"))
        seq = msg.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "infer needs an integer seq")
        raw = msg.get("obs")
        if isinstance(raw, dict) and "data" not in raw:
            def observation() -> np.ndarray:
                return self.policy.assemble({k: unpack_array(v, f"obs.{k}") for k, v in raw.items()})
        else:
            def observation() -> np.ndarray:
                return self.policy.assemble(unpack_array(raw, "obs"))
        self._admit_infer(envelope, session, seq, msg.get("id"), observation, msg.get("deadline_ms", self.cfg.deadline_ms),
                          msg.get("sent"), msg.get("config_hash"))

    def _admit_infer(self, envelope: list[bytes], session: Session, seq: int, request_id: Any,
                     observation: Callable[[], np.ndarray], deadline_ms: Any, sent: Any, client_hash: Any) -> None:
        """What both paths check after decoding (the observation, the deadline, the hash, the limits), then queue."""
        try:
            obs = observation()
        except ObservationSizeError as err:
            raise ProtocolError(ErrorCode.WRONG_SIZE, str(err)) from None
        if not isinstance(deadline_ms, (int, float)) or isinstance(deadline_ms, bool) or not 0 < deadline_ms <= 60000:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "deadline_ms must be a number in (0, 60000]")
        mismatch = self._check_hash(session, client_hash, request_id, seq)
        key = (session.token, seq)
        if key in self._pending:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"seq {seq} is already in flight on this connection")
        if session.in_flight >= self.cfg.max_in_flight or len(self._backlog) >= self.cfg.max_backlog:
            raise ProtocolError(ErrorCode.OVERLOADED, f"too many requests waiting (this session: {session.in_flight}, "
                                f"all: {len(self._backlog)}); wait for replies before sending more")
        now = time.monotonic()
        received = self._sent_time(sent, now)
        watch_s = max(deadline_ms - self.cfg.reply_margin_ms, 0.5 * deadline_ms) / 1000.0
        pending = _Pending(envelope, session, seq, request_id, obs, received, received + watch_s,
                           received + deadline_ms / 1000.0, mismatch)
        if pending.deadline <= now:  # it waited in the queues past its deadline: the safe action at once
            self._answer_hold(pending, now)
            return
        self._pending[key] = pending
        session.in_flight += 1
        self._watchdog.add(pending.deadline, key)
        self._backlog.append((pending, self.policy))  # the policy of this moment: a reload does not affect it

    def _check_hash(self, session: Session, client_hash: Any, request_id: Any, seq: int) -> bool:
        """True if the client's ``config_hash`` differs from the export's: flagged in the reply, written to the event
        log and to ``hash_mismatch_events.jsonl``. A session's first hash and every change of it are a ``client_hash``
        event (matching or not), so ``roarm-gateway analyze`` can tell when a client's configuration drifted."""
        if client_hash is None:
            return False
        shown = str(client_hash)[:MAX_FIELD_CHARS]
        mismatch = client_hash != self.policy.config_hash
        if shown != session.config_hash:
            self._event("client_hash", id=request_id, client=session.label, name=session.name, hash=shown,
                        previous=session.config_hash, matches=not mismatch)
            session.config_hash = shown
        if mismatch:
            session.stats.hash_mismatches += 1
            self._event("hash_mismatch", id=request_id, client=session.label, seq=seq, client_hash=shown,
                        policy_hash=self.policy.config_hash)
            self.hash_log.record(session.label, session.name, self.policy.config_hash, shown, request_id, seq)
        return mismatch

    def _sent_time(self, sent: Any, now: float) -> float:
        """When the client sent the request (its ``time.monotonic()``, same clock on one machine), else now.

        The deadline then counts the time the request spent queued before the server read it.
        """
        if not self._local or not isinstance(sent, float) or not now - MAX_SENT_AGE_S <= sent <= now:
            return now
        return sent

    def _on_ping(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        self._send(envelope, {"ok": True, "type": "pong", "id": msg.get("id"), "time": time.time()})

    def _on_stats(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        stats = self.stats.snapshot(self.sessions.recent())
        own = self.sessions.get(msg.get("session"), identity, time.monotonic())
        if own is not None:  # the caller's own counters, wherever it ranks among the recent sessions
            stats["session"] = {"label": own.label, **client_entry(own.name, own.stats)}
        self._send(envelope, {"ok": True, "type": "stats", "id": msg.get("id"), "stats": stats})

    def _on_reset(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        session = self._session(identity, msg.get("session"))
        session.targets.target = None
        session.stats.recent.clear()
        self._send(envelope, {"ok": True, "type": "reset", "id": msg.get("id")})

    def _admin(self, identity: bytes, msg: dict) -> Session:
        """The caller's session if it presents the admin token; else ``forbidden``."""
        if self._admin_token is None:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"{msg['type']} is an admin request and admin requests are off "
                                "on this server (start it with --admin-token-file FILE)")
        session = self._session(identity, msg.get("session"))
        if not token_matches(self._admin_token, msg.get("token")):
            self._event("admin_refused", id=msg.get("id"), client=session.label, type=msg["type"])
            raise ProtocolError(ErrorCode.FORBIDDEN, f"{msg['type']} refused: the admin token is missing or wrong")
        return session

    def _on_reload(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        session = self._admin(identity, msg)
        path, backend = msg.get("path"), msg.get("backend", self.policy.backend)
        if not isinstance(path, str) or backend not in ("onnx", "torchscript"):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "reload needs a string path to an exported/ folder and a "
                                "backend of onnx or torchscript")
        if self._reloading:
            raise ProtocolError(ErrorCode.OVERLOADED, "a reload is already running; send this one when it has answered")
        self._reloading = True
        threading.Thread(target=self._reload, args=(envelope, msg.get("id"), session.label, path, backend),
                         name="gateway-reload", daemon=True).start()

    def _reload(self, envelope: list[bytes], request_id: Any, label: str, path: str, backend: str) -> None:
        """Load off the serving path (the socket keeps being served), then swap the policy under the lock."""
        try:
            new, error = LoadedPolicy.load(allowed_export(path, self._reload_roots), backend, compiled=True), None
        except PolicyLoadError as err:
            new, error = None, str(err)
        except Exception as err:  # noqa: BLE001 - any failure is a refused reload; the old policy serves on
            new, error = None, f"{type(err).__name__}"
        with self._lock:
            self._reloading = False
            if self._closed:
                return
            if new is not None and (new.obs_size, new.action_size) != (self.policy.obs_size, self.policy.action_size):
                error = (f"sizes {new.obs_size}/{new.action_size} differ from the served "
                         f"{self.policy.obs_size}/{self.policy.action_size}")
            if error is not None:
                self._error(envelope, ErrorCode.RELOAD_FAILED, f"reload of {path} refused: {error}", request_id)
                return
            old = self.policy
            self.policy = new  # requests already queued keep the policy they were queued with
            self.events.write("reload", id=request_id, client=label, old=str(old.path), new=str(new.path),
                              config_hash=new.config_hash)
            self._send(envelope, {"ok": True, "type": "reload", "id": request_id, "spec": new.spec()})

    def _on_shutdown(self, envelope: list[bytes], identity: bytes, msg: dict) -> None:
        session = self._admin(identity, msg)
        if not self.cfg.allow_shutdown:
            raise ProtocolError(ErrorCode.FORBIDDEN, "shutdown is disabled on this server (start it with --allow-shutdown)")
        self._send(envelope, {"ok": True, "type": "shutdown", "id": msg.get("id")})
        self.events.write("shutdown", id=msg.get("id"), client=session.label)
        self.request_stop()

    # ------------------------------------------------------------------ replies
    def _error(self, envelope: list[bytes], code: ErrorCode, message: str, request_id: Any, seq: Any = None,
               session: Session | None = None, extra: dict | None = None) -> None:
        self.stats.errors[code.value] += 1
        if session is not None:
            session.stats.errors += 1
        self.metrics.count_error(code.value)
        self._event("error", id=request_id, client=session.label if session else None, code=code.value, message=message)
        reply = error_reply(code, message, request_id)
        if isinstance(seq, int):
            reply["seq"] = seq
        if extra:
            reply.update(extra)
        self._send(envelope, reply)

    def _send(self, envelope: list[bytes], reply: dict) -> None:
        try:
            frame = encode(reply)
        except Exception as err:  # a value no encoder takes must not end the serving loop: a fixed reply instead
            self.events.write("internal_error", where="encode", error=f"{type(err).__name__}: {err}")
            frame = encode(error_reply(ErrorCode.INTERNAL, "internal error (the reply could not be encoded)"))
        try:
            self.socket.send_multipart([*envelope, frame], zmq.NOBLOCK)
        except zmq.Again:  # the client's queue is full or it is gone: drop, do not block the loop
            self.stats.errors["send_dropped"] += 1

    def _event(self, event: str, **fields: Any) -> None:
        """A per-request event, within ``event_rate_per_s``: a flood of bad requests must not flood the disk."""
        if self._event_budget >= 1.0:
            self._event_budget -= 1.0
            self.events.write(event, **fields)
        else:
            self._events_suppressed += 1

    def _write_latency(self, now: float) -> None:
        """The ``latency`` event of the replies since the last one (none if there were none)."""
        record = self.stats.interval.take()
        if record is not None:
            self.events.write("latency", interval_s=round(now - self._last_latency_event, 3), **record)
        self._last_latency_event = now

    def _tick(self, now: float) -> None:
        self._event_budget = self.cfg.event_rate_per_s
        self.hash_log.roll(now)
        if self.cfg.latency_event_s and now - self._last_latency_event >= self.cfg.latency_event_s:
            self._write_latency(now)
        if self._events_suppressed:
            self.events.write("events_suppressed", count=self._events_suppressed)
            self._events_suppressed = 0
        self.sessions.prune(now)
        self.stats.sessions = len(self.sessions)
        alert = self.sla.check(self.stats)
        if alert is not None:
            self.events.write("sla_alert", **alert)
            self.metrics.count_alert()
        self.metrics.update_from(self.stats)
