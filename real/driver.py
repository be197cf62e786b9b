"""The RoArm-M3 driver: one owner thread per port, newest plausible feedback, clamped and rate-limited commands.

Callers never touch the port. The owner thread reads every line, keeps the newest valid T:1051 frame
with its arrival time (``time.monotonic``), counts what it drops (garbage, torn, unpowered-servo frames),
queries with T:105 when the arm does not stream, and writes commands: joint targets through a
latest-wins slot sent at most at ``rate_hz``, other commands in order. A failed port is closed and
reopened every ``reconnect_s`` until it comes back; commands queued meanwhile are dropped, not replayed.

Every joint frame leaves through one method, ``_send_joints``: the calibrated box's clamp, then T:102. No
other command that moves a joint is written. Only the policy's steps (which the bridge bounds per step) go
at spd 0; every other move (start, hold, stop, home) at a bounded speed.

A finite frame that cannot be true (``plausibility.py``) is a fault: it never becomes the state, no new joint
target is written while the newest frame is one (the servos keep the last command sent), and after
``fault_limit`` in a row the driver stops with ``error`` (what the arm reported, and the limit).

Joint values are true URDF radians (JOINTS order) on this side; the calibration maps them to and from
what the servos report. Stop means torque-hold, never T:0 (the firmware blocks 10 s).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from roarm_lab.assets.joint_table import JOINTS, NAMED_POSES, SERVO, safe_box
from roarm_lab.real.calibration import Calibration
from roarm_lab.real.plausibility import Fault, FeedbackLimits
from roarm_lab.real.protocol import (MOTION_COMMANDS, WIRE_DECIMALS, Feedback, FrameError, command_joints, encode,
                                     flow_feedback_command, joints_command, led_command, parse_feedback,
                                     query_command, spd_for, torque_command)
from roarm_lab.real.transport import HttpTransport, SerialTransport, TransportError

log = logging.getLogger(__name__)

MOVE_SPEED_RAD_S = SERVO.speed_rad_s / 4
"""Joint speed of every move the policy did not command (start, hold, stop, home): a quarter of the servos'
usual speed, slow enough to watch and to stop. Any move's speed is capped at ``SERVO.speed_rad_s``."""
FAULT_LIMIT = 5
"""Implausible frames in a row after which the driver stops (about 0.2 s of feedback)."""
SAFE_LOWER, SAFE_UPPER = safe_box()


class DriverError(RuntimeError):
    """The arm cannot be used (no port, no feedback); the message says what to check."""


@dataclass
class DriverStats:
    frames: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)
    commands_sent: int = 0
    joint_commands_sent: int = 0
    """Joint frames written to the arm, whoever asked (policy, start move, hold, stop)."""
    joint_commands_superseded: int = 0
    joint_commands_held: int = 0
    """Joint targets not written because the newest frame was a fault (the servos kept the last command)."""
    max_command_outside_box_rad: float = 0.0
    """How far any joint frame on the wire lay outside the safe joint box, read back from the frame itself
    (at the wire's resolution, 1e-4 rad)."""
    commands_clamped: int = 0
    commands_refused: int = 0
    faults: int = 0
    """Implausible frames (``plausibility.py``)."""
    reconnects: int = 0
    link_errors: int = 0
    connected: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "dropped": dict(self.dropped), "faults": self.faults,
                "commands_sent": self.commands_sent, "joint_commands_sent": self.joint_commands_sent,
                "joint_commands_superseded": self.joint_commands_superseded,
                "joint_commands_held": self.joint_commands_held,
                "max_command_outside_box_rad": self.max_command_outside_box_rad,
                "commands_clamped": self.commands_clamped, "commands_refused": self.commands_refused,
                "reconnects": self.reconnects,
                "link_errors": self.link_errors, "connected": self.connected}


@dataclass
class JointCommand:
    q: np.ndarray
    """Clamped true joint targets (URDF rad, JOINTS order)."""
    clamped: np.ndarray
    """Per joint: the request was outside the box."""


@dataclass(frozen=True)
class _JointTarget:
    """A joint target waiting in the slot: true radians, the T:102 speed, and whether it may pass during a fault."""

    q: np.ndarray
    spd: int
    hold: bool = False
    """A hold of the last command sent (or of a plausible pose): written even while the newest frame is a fault."""


class RoArmDriver:
    def __init__(self, transport: SerialTransport | HttpTransport, *, calibration: Calibration | None = None,
                 rate_hz: float = 30.0, query_hz: float = 25.0, quiet_stream: bool = True, reconnect_s: float = 0.5,
                 dry_run: bool = False, on_dry_run: Callable[[dict[str, Any]], None] | None = None,
                 limits: FeedbackLimits | None = None, fault_limit: int = FAULT_LIMIT):
        self.transport = transport
        self.calibration = calibration or Calibration()
        self.limits = limits or FeedbackLimits.servo_driven()
        self.fault_limit = fault_limit
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
        self._joint_slot: _JointTarget | None = None
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._last_joint_write = -1e9
        self._last_query = -1e9
        self._in_flight = False
        self._silenced = False  # we turned the arm's feedback stream off (and turn it back on at close)
        self._running = False
        self._thread: threading.Thread | None = None
        self._fault: Fault | None = None  # the newest frame's, None when it was plausible
        self._faults_in_row = 0
        self._error: DriverError | None = None
        self._last_sent: np.ndarray | None = None  # the last joint frame written (true rad, clamped)

    @classmethod
    def serial(cls, port: str, **kwargs: Any) -> "RoArmDriver":
        return cls(SerialTransport(port), **kwargs)

    @classmethod
    def http(cls, host: str, **kwargs: Any) -> "RoArmDriver":
        return cls(HttpTransport(host), **kwargs)

    # ------------------------------------------------------------------ lifecycle
    def start(self, first_feedback_timeout_s: float = 3.0) -> "RoArmDriver":
        """Start the owner thread (once) and wait for a first plausible frame."""
        if self._running:
            return self
        self._running = True
        self._thread = threading.Thread(target=self._own, name=f"roarm-{self.transport}", daemon=True)
        self._thread.start()
        if self.wait_feedback(timeout=first_feedback_timeout_s) is None:
            error = self._error or DriverError(
                f"no valid feedback from {self.transport} in {first_feedback_timeout_s:.0f} s "
                f"(dropped: {dict(self.stats.dropped) or 'none'}, faults: {self.stats.faults}, "
                f"link errors: {self.stats.link_errors}); is the arm powered (12 V), is this its port (the middle "
                "USB-C, CP2102), or is another program holding it?")
            self.close(hold=False)
            raise error
        return self

    @property
    def running(self) -> bool:
        return self._running

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
        """The newest plausible frame, joints already in true (calibrated) radians."""
        return self._feedback

    @property
    def fault(self) -> Fault | None:
        """What the newest frame broke, if it was implausible (the driver holds meanwhile); else None."""
        return self._fault

    @property
    def error(self) -> DriverError | None:
        """Set once ``fault_limit`` implausible frames came in a row: the driver sends no new target after it."""
        return self._error

    @property
    def last_sent(self) -> np.ndarray | None:
        """The last joint frame written (true radians, clamped): what the servos hold."""
        return None if self._last_sent is None else self._last_sent.copy()

    def wait_feedback(self, newer_than: float = -1.0, timeout: float = 1.0) -> Feedback | None:
        """The next plausible frame newer than ``newer_than``; None after ``timeout`` or once the driver stopped."""
        end = time.monotonic() + timeout
        with self._new_frame:
            while self._feedback is None or self._feedback.received <= newer_than:
                left = end - time.monotonic()
                if left <= 0 or self._error is not None:
                    return None
                self._new_frame.wait(left)
            return self._feedback

    # ------------------------------------------------------------------ commands
    def command_joints(self, q: Sequence[float], speed_rad_s: float | None = MOVE_SPEED_RAD_S) -> JointCommand:
        """Ask for true joint targets (6, URDF rad): clamped to the box, sent at most at ``rate_hz`` (latest wins).

        The servos move there at ``speed_rad_s`` (capped at ``SERVO.speed_rad_s``). None is spd 0, the servos' full
        speed: only for a caller that bounds each step itself, as the bridge's policy loop does. Raises
        ``DriverError`` once the driver has stopped on implausible feedback.
        """
        if self._error is not None:
            raise self._error
        return self._command(q, speed_rad_s, hold=False)

    def _command(self, q: Sequence[float], speed_rad_s: float | None, hold: bool) -> JointCommand:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (len(JOINTS),) or not np.all(np.isfinite(q)):
            raise ValueError(f"joint targets must be {len(JOINTS)} finite values ({[j.short for j in JOINTS]}), got {q}")
        spd = 0 if speed_rad_s is None else spd_for(min(speed_rad_s, SERVO.speed_rad_s))
        safe = self.calibration.clamp(q)  # what _send_joints will send: the caller learns it now
        clamped = np.abs(safe - q) > 1e-6  # a float32 target at a limit is not a clamp
        with self._lock:
            if clamped.any():
                self.stats.commands_clamped += 1
            if self._joint_slot is not None:
                self.stats.joint_commands_superseded += 1
            self._joint_slot = _JointTarget(q, spd, hold)
        return JointCommand(safe, clamped)

    def torque(self, on: bool) -> None:
        self._enqueue(torque_command(on))

    def led(self, level: int) -> None:
        self._enqueue(led_command(level))

    def home(self) -> JointCommand:
        """Go to the home pose at the bounded speed of a move the policy did not command."""
        return self.command_joints(NAMED_POSES["home"])

    def stop(self) -> JointCommand | None:
        """Torque-hold (never T:0, which blocks the firmware for 10 s), at ``MOVE_SPEED_RAD_S`` through the clamp.

        The hold pose is the newest measured pose; while the newest frame is implausible (or after the driver
        stopped on them), the last command sent, which the servos already hold. With neither: torque on only.
        Works after ``error`` too. An arm outside the calibrated box moves slowly to its edge.
        """
        with self._lock:
            faulted = self._fault is not None or self._error is not None
            pose = self._last_sent if faulted and self._last_sent is not None else \
                None if self._feedback is None else self._feedback.q
        self._enqueue(torque_command(True))
        return None if pose is None else self._command(pose, MOVE_SPEED_RAD_S, hold=True)

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
                self._send_other(cmd)
            if joint is not None:
                self._last_joint_write = now
                if (self._fault is not None or self._error is not None) and not joint.hold:
                    self.stats.joint_commands_held += 1  # the servos keep the last safe command
                else:
                    self._send_joints(joint)
        finally:
            self._in_flight = False
        fb = self._feedback
        quiet = fb is None or now - fb.received > 2 * self.query_period  # a stream that is off or stalled
        if (not streaming or quiet) and now - self._last_query >= self.query_period:
            self._last_query = now
            self.transport.send(encode(query_command()))

    def _send_joints(self, target: _JointTarget) -> None:
        """The one way a joint frame leaves the driver: clamped to the calibrated box here, at the point of writing,
        whoever asked; what went on the wire is read back and measured against the safe joint box."""
        q = self.calibration.clamp(target.q)
        cmd = joints_command(self.calibration.to_firmware(q), spd=target.spd)
        if not self._write(cmd):
            return
        self._last_sent = q
        self.stats.joint_commands_sent += 1
        wire = self.calibration.to_true(command_joints(cmd))
        outside = float(np.max(np.maximum(wire - SAFE_UPPER, SAFE_LOWER - wire)))
        if outside > 10.0 ** -WIRE_DECIMALS:  # below the wire's resolution a value at the limit is at the limit
            self.stats.max_command_outside_box_rad = max(self.stats.max_command_outside_box_rad, outside)

    def _send_other(self, cmd: dict[str, Any]) -> None:
        """A queued command (torque, LED, flow): never one that moves a joint, which only ``_send_joints`` writes."""
        if cmd.get("T") in MOTION_COMMANDS:
            self.stats.commands_refused += 1
            log.error("refusing a queued T:%s: joint motion goes through command_joints (the box's clamp)",
                      cmd.get("T"))
            return
        self._write(cmd)

    def _write(self, cmd: dict[str, Any]) -> bool:
        """Encode and send one command; True if it went on the wire."""
        try:
            line = encode(cmd)  # refuses a non-finite number: nothing unchecked reaches the wire
        except ValueError as err:
            self.stats.commands_refused += 1
            log.error("%s", err)
            return False
        if self.dry_run:
            self.on_dry_run(cmd)
            return False
        self.transport.send(line)
        self.stats.commands_sent += 1
        return True

    def _take(self, line: bytes, received: float) -> None:
        try:
            fb = parse_feedback(line, received)
        except FrameError as err:
            self.stats.dropped[err.kind] += 1
            return
        fb = Feedback(fb.received, self.calibration.to_true(fb.q), fb.tcp_mm, fb.loads, fb.raw)
        fault = self.limits.fault(fb, self._feedback)
        with self._new_frame:
            if fault is None:
                if self._fault is not None:
                    log.warning("%s: feedback plausible again after %d implausible frame(s)", self.transport,
                                self._faults_in_row)
                self._feedback, self._fault, self._faults_in_row = fb, None, 0
                self.stats.frames += 1
            else:
                self._on_fault(fault)
            self._new_frame.notify_all()

    def _on_fault(self, fault: Fault) -> None:
        """Hold (no new target is written while the newest frame is a fault); stop after ``fault_limit`` in a row."""
        if self._fault is None:
            log.warning("%s: %s; holding the last command", self.transport, fault)
        self._fault = fault
        self._faults_in_row += 1
        self.stats.faults += 1
        if self._faults_in_row >= self.fault_limit and self._error is None:
            held = "sent nothing" if self._last_sent is None else "holds the last command it sent"
            self._error = DriverError(
                f"{fault}; {self._faults_in_row} implausible frames in a row, so the driver stopped and {held}. Check "
                "the servo cables and the calibration (--calibration); if the arm really is outside the joint box, "
                "move it back by hand with the torque off")
            log.error("%s", self._error)
