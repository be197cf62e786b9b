"""The RoArm-M3 driver: one owner thread per port, newest feedback, clamped and rate-limited commands.

Callers never touch the port. The owner thread reads every line, keeps the newest valid T:1051 frame
with its arrival time (``time.monotonic``), counts what it drops (garbage, torn, unpowered-servo frames),
queries with T:105 when the arm does not stream, and writes commands: joint targets through a
latest-wins slot sent at most at ``rate_hz``, other commands in order. A failed port is closed and
reopened every ``reconnect_s`` until it comes back; commands queued meanwhile are dropped, not replayed.

Joint values are true URDF radians (JOINTS order) on this side; the calibration maps them to and from
what the servos report. Stop means torque-hold at the current pose, never T:0 (the firmware blocks 10 s).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from roarm_lab.assets.joint_table import JOINTS, NAMED_POSES
from roarm_lab.real.calibration import Calibration
from roarm_lab.real.protocol import (Feedback, FrameError, encode, flow_feedback_command, joints_command,
                                     led_command, parse_feedback, query_command, torque_command)
from roarm_lab.real.transport import HttpTransport, SerialTransport, TransportError

log = logging.getLogger(__name__)


class DriverError(RuntimeError):
    """The arm cannot be used (no port, no feedback); the message says what to check."""


@dataclass
class DriverStats:
    frames: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)
    commands_sent: int = 0
    joint_commands_sent: int = 0
    joint_commands_superseded: int = 0
    commands_clamped: int = 0
    commands_refused: int = 0
    reconnects: int = 0
    link_errors: int = 0
    connected: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "dropped": dict(self.dropped), "commands_sent": self.commands_sent,
                "joint_commands_sent": self.joint_commands_sent,
                "joint_commands_superseded": self.joint_commands_superseded,
                "commands_clamped": self.commands_clamped, "commands_refused": self.commands_refused,
                "reconnects": self.reconnects,
                "link_errors": self.link_errors, "connected": self.connected}


@dataclass
class JointCommand:
    q: np.ndarray
    """Clamped true joint targets (URDF rad, JOINTS order)."""
    clamped: np.ndarray
    """Per joint: the request was outside the box."""


class RoArmDriver:
    def __init__(self, transport: SerialTransport | HttpTransport, *, calibration: Calibration | None = None,
                 rate_hz: float = 30.0, query_hz: float = 25.0, quiet_stream: bool = True, reconnect_s: float = 0.5,
                 dry_run: bool = False, on_dry_run: Callable[[dict[str, Any]], None] | None = None):
        self.transport = transport
        self.calibration = calibration or Calibration()
        self.period = 1.0 / rate_hz
        self.query_period = 1.0 / query_hz
        self.quiet_stream = quiet_stream
        self.reconnect_s = reconnect_s
        self.dry_run = dry_run
        self.on_dry_run = on_dry_run or (lambda cmd: print("dry-run:", encode(cmd).decode().strip()))
        self.stats = DriverStats()
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._feedback: Feedback | None = None
        self._joint_slot: dict[str, Any] | None = None
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._last_joint_write = -1e9
        self._last_query = -1e9
        self._in_flight = False
        self._silenced = False  # we turned the arm's feedback stream off (and turn it back on at close)
        self._running = False
        self._thread: threading.Thread | None = None

    @classmethod
    def serial(cls, port: str, **kwargs: Any) -> "RoArmDriver":
        return cls(SerialTransport(port), **kwargs)

    @classmethod
    def http(cls, host: str, **kwargs: Any) -> "RoArmDriver":
        return cls(HttpTransport(host), **kwargs)

    # ------------------------------------------------------------------ lifecycle
    def start(self, first_feedback_timeout_s: float = 3.0) -> "RoArmDriver":
        """Start the owner thread and wait for a first valid frame."""
        self._running = True
        self._thread = threading.Thread(target=self._own, name=f"roarm-{self.transport}", daemon=True)
        self._thread.start()
        if self.wait_feedback(timeout=first_feedback_timeout_s) is None:
            self.close(hold=False)
            raise DriverError(f"no valid feedback from {self.transport} in {first_feedback_timeout_s:.0f} s "
                              f"(dropped: {dict(self.stats.dropped) or 'none'}, link errors: {self.stats.link_errors}); "
                              "is the arm powered (12 V), is this its port (the middle USB-C, CP2102), or is "
                              "another program holding it?")
        return self

    def close(self, hold: bool = True) -> None:
        """Stop the owner thread; with ``hold`` the last act is a torque-hold at the current pose.

        The arm is left streaming feedback as it was found (the driver silenced it only for its own queries).
        """
        if hold and self._running and self.stats.connected:
            self.stop()
        if self._silenced and self._running and self.stats.connected:
            self._enqueue(flow_feedback_command(True))
        if self._running and self.stats.connected:
            self.flush(timeout=1.0)  # let the owner write them
        self._running = False
        if self._thread is not None:
            self._thread.join(2.0)
        self.transport.close()

    def __enter__(self) -> "RoArmDriver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state
    def feedback(self) -> Feedback | None:
        """The newest valid frame, joints already in true (calibrated) radians."""
        return self._feedback

    def wait_feedback(self, newer_than: float = -1.0, timeout: float = 1.0) -> Feedback | None:
        end = time.monotonic() + timeout
        with self._new_frame:
            while self._feedback is None or self._feedback.received <= newer_than:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._new_frame.wait(left)
            return self._feedback

    # ------------------------------------------------------------------ commands
    def command_joints(self, q: Sequence[float], spd: int = 0, acc: int = 10) -> JointCommand:
        """Ask for true joint targets (6, URDF rad); clamped to the box, sent at most at ``rate_hz`` (latest wins)."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (len(JOINTS),) or not np.all(np.isfinite(q)):
            raise ValueError(f"joint targets must be {len(JOINTS)} finite values ({[j.short for j in JOINTS]}), got {q}")
        safe = self.calibration.clamp(q)
        clamped = np.abs(safe - q) > 1e-6  # a float32 target at a limit is not a clamp
        self._put_joints(joints_command(self.calibration.to_firmware(safe), spd=spd, acc=acc), bool(clamped.any()))
        return JointCommand(safe, clamped)

    def _put_joints(self, cmd: dict[str, Any], clamped: bool) -> None:
        with self._lock:
            if clamped:
                self.stats.commands_clamped += 1
            if self._joint_slot is not None:
                self.stats.joint_commands_superseded += 1
            self._joint_slot = cmd

    def torque(self, on: bool) -> None:
        self._enqueue(torque_command(on))

    def led(self, level: int) -> None:
        self._enqueue(led_command(level))

    def home(self, spd: int = 400) -> JointCommand:
        """Go to the home pose at a gentle servo speed (steps/s)."""
        return self.command_joints(NAMED_POSES["home"], spd=spd, acc=10)

    def stop(self) -> JointCommand | None:
        """Torque-hold at the current pose (never T:0, which blocks the firmware for 10 s).

        The measured pose is sent as it is, not clamped: an arm outside the calibrated box (moved by hand,
        narrower limits) must stay where it is, not jump to the box's edge at full speed.
        """
        fb = self._feedback
        self._enqueue(torque_command(True))
        if fb is None:
            return None
        self._put_joints(joints_command(self.calibration.to_firmware(fb.q)), clamped=False)
        return JointCommand(fb.q.copy(), np.zeros(len(JOINTS), dtype=bool))

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait until every queued command has been written (e.g. torque off before asking a person to move)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if not self._queue and self._joint_slot is None and not self._in_flight:
                    return True
            time.sleep(0.005)
        return False

    def _enqueue(self, cmd: dict[str, Any]) -> None:
        with self._lock:
            self._queue.append(cmd)

    # ------------------------------------------------------------------ owner thread
    def _own(self) -> None:
        while self._running:
            if not self.stats.connected and not self._connect():
                time.sleep(self.reconnect_s)
                continue
            try:
                self._serve_once()
            except TransportError as err:
                self._drop_link(err)

    def _connect(self) -> bool:
        try:
            self.transport.open()
            if self.transport.streams and self.quiet_stream and not self.dry_run:  # a dry run writes nothing
                self.transport.send(encode(flow_feedback_command(False)))
                self._silenced = True
                time.sleep(0.05)
                self.transport.flush_input()
            self.transport.send(encode(query_command()))
            self._last_query = time.monotonic()
        except TransportError as err:
            self.transport.close()
            self.stats.link_errors += 1
            log.debug("connect failed: %s", err)
            return False
        with self._lock:  # nothing queued while the link was down is replayed
            self._joint_slot = None
            self._queue.clear()
        if self.stats.reconnects or self.stats.frames:
            log.warning("%s: link back", self.transport)
        self.stats.connected = True
        self.stats.reconnects += 1 if self.stats.frames else 0
        return True

    def _drop_link(self, err: Exception) -> None:
        log.warning("%s: link lost (%s); reconnecting every %.1f s", self.transport, err, self.reconnect_s)
        self.stats.link_errors += 1
        self.stats.connected = False
        self.transport.close()

    def _serve_once(self) -> None:
        now = time.monotonic()
        due = self._last_joint_write + self.period
        streaming = self.transport.streams and not self._silenced
        timeout = 0.005 if self._joint_slot is None else min(0.005, max(0.0, due - now))
        for line in self.transport.receive(timeout):
            self._take(line, time.monotonic())
        now = time.monotonic()
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
            joint = self._joint_slot if now >= due else None
            if joint is not None:
                self._joint_slot = None
            self._in_flight = bool(queued) or joint is not None
        try:
            for cmd in queued:
                self._write(cmd)
            if joint is not None:
                self._write(joint)
                self._last_joint_write = now
                self.stats.joint_commands_sent += 1
        finally:
            self._in_flight = False
        fb = self._feedback
        quiet = fb is None or now - fb.received > 2 * self.query_period  # a stream that is off or stalled
        if (not streaming or quiet) and now - self._last_query >= self.query_period:
            self._last_query = now
            self.transport.send(encode(query_command()))

    def _write(self, cmd: dict[str, Any]) -> None:
        try:
            line = encode(cmd)  # refuses a non-finite number: nothing unchecked reaches the wire
        except ValueError as err:
            self.stats.commands_refused += 1
            log.error("%s", err)
            return
        if self.dry_run:
            self.on_dry_run(cmd)
            return
        self.transport.send(line)
        self.stats.commands_sent += 1

    def _take(self, line: bytes, received: float) -> None:
        try:
            fb = parse_feedback(line, received)
        except FrameError as err:
            self.stats.dropped[err.kind] += 1
            return
        fb = Feedback(fb.received, self.calibration.to_true(fb.q), fb.tcp_mm, fb.loads, fb.raw)
        with self._new_frame:
            self._feedback = fb
            self.stats.frames += 1
            self._new_frame.notify_all()
