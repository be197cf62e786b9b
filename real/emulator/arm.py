"""The emulated arm: the firmware (v0.84 JSON commands over a pseudo-terminal and HTTP) and the MuJoCo arm behind it.

Command latency, a slew-limited setpoint, a deadband, position servos that sag under gravity, limp torque-off,
the emergency-stop block, flow feedback at about 23 Hz, and injected faults (garbage, torn and unpowered frames,
dropped frames, a pulled USB cable, frames that report a finite but implausible joint value, silence).
"""

from __future__ import annotations

import collections
import fcntl
import math
import os
import random
import select
import sys
import tempfile
import termios
import threading
import time
import tty
import urllib.parse
from http.server import ThreadingHTTPServer
from typing import Any, Sequence

import mujoco
import numpy as np

from roarm_lab.assets.joint_table import JOINTS, NAMED_POSES, TCP_FRAME, joint
from roarm_lab.assets.kinematics import world_to_firmware_mm
from roarm_lab.assets.mjcf import build_model
from roarm_lab.real.emulator.config import (JOINT_COMMAND_LOG, LIMP_GEAR_FRICTION_NM, MAX_LAG_S, MAX_PENDING_LINE,
                                            PHYSICS_TICK_S, TTY_QUEUE_LIMIT, EmulatorConfig)
from roarm_lab.real.emulator.http import make_handler
from roarm_lab.real.protocol import (MAX_COMMAND_BYTES, T_CLEAR_ESTOP, T_ESTOP, T_FLOW, T_HOME, T_JOINT, T_JOINTS,
                                     T_LED, T_QUERY, T_TORQUE, LOAD_FIELDS, WIRE_DECIMALS, command_joint_targets,
                                     encode, feedback_message, firmware_range, parse_command, spd_speed)


class ArmEmulator:
    """The firmware and its arm: a pty (and optionally HTTP) front end over a real-time MuJoCo simulation."""

    def __init__(self, config: EmulatorConfig | None = None):
        self.config = cfg = config if config is not None else EmulatorConfig()
        if len(cfg.calibration_offset) != len(JOINTS):
            raise ValueError(f"calibration_offset needs {len(JOINTS)} values, got {len(cfg.calibration_offset)}")
        if cfg.feedback_hz <= 0 or cfg.physics_dt <= 0 or cfg.speed_rad_s <= 0:
            raise ValueError("feedback_hz, physics_dt and speed_rad_s must be positive")
        self._check_fault(cfg.fault_joint, cfg.fault_value_rad, cfg.fault_frames)
        self._offset = np.asarray(cfg.calibration_offset, dtype=np.float64)
        self._model = build_model(cfg.physics_dt)
        self._data = mujoco.MjData(self._model)
        mujoco.mj_resetDataKeyframe(self._model, self._data, self._model.key("home").id)
        mujoco.mj_forward(self._model, self._data)
        self._site = self._model.site(TCP_FRAME).id
        self._act = np.array([self._model.actuator(j.short).id for j in JOINTS])
        self._effort = np.array([j.effort for j in JOINTS])
        self._max_speed = np.array([j.velocity for j in JOINTS])
        # The project's model stops the arm joints at the safe learning box; the real arm goes wherever the
        # firmware's clamps let it (NAMED_POSES["observe"] is outside the box). The gripper keeps its jaw stops.
        fw = np.stack(firmware_range(), axis=1)
        jnt = np.array([self._model.joint(j.name).id for j in JOINTS])
        self._model.jnt_range[jnt[:5]] = fw[:5]
        self._model.actuator_ctrlrange[self._act] = np.vstack([fw[:5], self._model.jnt_range[jnt[5:]]])
        self._dof = self._model.jnt_dofadr[jnt]
        self._gain = self._model.actuator_gainprm[self._act].copy()
        self._bias = self._model.actuator_biasprm[self._act].copy()
        self._friction = self._model.dof_frictionloss[self._dof].copy()

        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._rng = random.Random(cfg.seed)
        q = self._data.qpos[:len(JOINTS)].copy()
        self._goal, self._setpoint = q.copy(), q.copy()
        self._speed = np.full(len(JOINTS), cfg.speed_rad_s)
        self._pending: list[tuple[float, dict[str, Any]]] = []
        self._torque = True
        self._estopped = False
        self._blocked_until = 0.0
        self._flow = cfg.flow_feedback
        self._t0 = 0.0
        self._started = False
        self._pull_scheduled = cfg.pull_cable_at_s is not None
        self._fault_scheduled = cfg.fault_at_s is not None
        self._fault: list[Any] | None = None  # [joint index, reported value, frames left or None, then silent]
        self._silent = False
        self.led = 0
        self.commands_received = 0
        """Commands acted on (known T, well formed, not blocked)."""
        self.ignored_lines = 0
        """Lines the firmware would drop: not JSON, unknown T, malformed, too long, or sent while blocked."""
        self.frames_sent = 0
        self.frames_dropped = 0
        """Feedback frames the pty could not take (client not reading, or cable pulled)."""
        self.last_command: dict[str, Any] | None = None
        """The last command acted on other than a T:105 query (a polling driver would hide everything else)."""
        self.joint_commands: collections.deque[dict[str, Any]] = collections.deque(maxlen=JOINT_COMMAND_LOG)
        """The last joint commands (T:102, T:101) as received, before the firmware's clamps: what a driver sent."""

        # pty: the master is ours; _gen changes on every cable pull so a stale fd is never read or written.
        self._tmpdir: str | None = None
        if cfg.link is None:
            self._tmpdir = tempfile.mkdtemp(prefix="roarm-emu-")
            self._link = os.path.join(self._tmpdir, "ttyRoArmEmu")
        else:
            self._link = os.path.abspath(cfg.link)
        self._master: int | None = None
        self._slave: int | None = None
        self._gen = 0
        self._reconnect_at: float | None = None
        self._http: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "ArmEmulator":
        """Open the pty (and HTTP), then start the physics, reader and HTTP threads."""
        if self._started:
            return self
        try:
            with self._lock:
                self._open_pty_locked()
            if self.config.http_port is not None:
                self._http = ThreadingHTTPServer(("127.0.0.1", self.config.http_port), make_handler(self))
                self._http.daemon_threads = True
        except OSError:
            self.stop()  # e.g. the HTTP port is taken: leave no link or pty behind
            raise
        self._started = True
        self._t0 = time.monotonic()
        self._threads = [threading.Thread(target=self._physics_loop, name="emu-physics", daemon=True),
                         threading.Thread(target=self._reader_loop, name="emu-pty-reader", daemon=True)]
        if self._http is not None:
            self._threads.append(threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.1},
                                                  name="emu-http", daemon=True))
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop every thread, close the pty, remove the link (and the temp dir the emulator made)."""
        self._stop.set()
        if self._http is not None:
            if self._started:
                self._http.shutdown()
            self._http.server_close()
            self._http = None
        for t in self._threads:
            t.join(timeout=5.0)
        self._threads = []
        with self._lock:
            self._close_pty_locked()
            self._reconnect_at = None
        if self._tmpdir is not None and os.path.isdir(self._tmpdir):
            os.rmdir(self._tmpdir)
            self._tmpdir = None

    def __enter__(self) -> "ArmEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ public state
    @property
    def port(self) -> str:
        """The symlink a driver opens (it survives cable pulls; the pty behind it changes)."""
        return self._link

    @property
    def http_url(self) -> str | None:
        if self._http is None:
            return None
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def torque_enabled(self) -> bool:
        with self._lock:
            return self._torque

    @property
    def flow_feedback(self) -> bool:
        with self._lock:
            return self._flow

    @property
    def estopped(self) -> bool:
        with self._lock:
            return self._estopped

    def true_joint_pos(self) -> np.ndarray:
        """The simulated joint positions (6, URDF radians), without the calibration offset."""
        with self._lock:
            return self._data.qpos[:len(JOINTS)].copy()

    def hand_position_mm(self) -> np.ndarray:
        """The true hand_tcp position in the firmware's Cartesian frame (mm)."""
        with self._lock:
            return world_to_firmware_mm(self._data.site_xpos[self._site].copy())

    def move_by_hand(self, q: Sequence[float]) -> None:
        """Put the limp arm in pose ``q`` (URDF radians) like a person would; the servos must be off."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (len(JOINTS),) or not np.all(np.isfinite(q)):
            raise ValueError(f"move_by_hand needs {len(JOINTS)} finite joint values, got {q!r}")
        with self._lock:
            if self._torque:
                raise RuntimeError("the servos hold their position: turn torque off (T:210 cmd 0) first")
            self._data.qpos[:len(JOINTS)] = q
            self._data.qvel[:] = 0.0
            self._setpoint[:] = q
            self._goal[:] = q
            mujoco.mj_forward(self._model, self._data)

    def report_fault(self, joint_name: str, value_rad: float, frames: int | None = None,
                     then_silent: bool = False) -> None:
        """From now on feedback frames report ``joint_name`` at ``value_rad`` (reported URDF radians): a servo that
        reads nonsense. After ``frames`` of them (None: never) the arm reads true again, or with ``then_silent``
        sends no feedback at all. Commands are obeyed throughout."""
        index = self._check_fault(joint_name, value_rad, frames)
        with self._lock:
            self._start_fault_locked(index, value_rad, frames, then_silent)

    def _start_fault_locked(self, index: int, value_rad: float, frames: int | None, then_silent: bool) -> None:
        self._fault = [index, float(value_rad), frames, then_silent]
        self._silent = frames == 0 and then_silent
        if frames == 0:
            self._fault = None

    @staticmethod
    def _check_fault(joint_name: str, value_rad: float, frames: int | None) -> int:
        try:
            index = JOINTS.index(joint(joint_name))
        except KeyError as err:
            raise ValueError(f"fault joint: {err.args[0]}") from None
        if not math.isfinite(value_rad):
            raise ValueError(f"fault value {value_rad}: a finite number (the firmware never sends NaN)")
        if frames is not None and frames < 0:
            raise ValueError(f"fault frames {frames}: a count >= 0, or None for every frame")
        return index

    def pull_cable(self, seconds: float) -> None:
        """Unplug the USB cable now (the port's reader gets an I/O error, the link vanishes); replug after ``seconds``."""
        with self._lock:
            self._close_pty_locked()
            self._reconnect_at = time.monotonic() + max(0.0, float(seconds))

    # ------------------------------------------------------------------ pty
    def _open_pty_locked(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no newline translation: bytes pass as on a USB serial port
        fcntl.fcntl(master, fcntl.F_SETFL, fcntl.fcntl(master, fcntl.F_GETFL) | os.O_NONBLOCK)
        self._master, self._slave = master, slave  # holding the slave keeps the master from reading EIO
        self._gen += 1
        os.makedirs(os.path.dirname(self._link), exist_ok=True)
        if os.path.lexists(self._link) and not os.path.islink(self._link):
            raise FileExistsError(f"{self._link} exists and is not a symlink; choose another --link")
        tmp = f"{self._link}.{os.getpid()}.tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self._link)  # atomic: a driver polling the link never sees a half-made one

    def _close_pty_locked(self) -> None:
        if self._master is None:
            return
        if os.path.islink(self._link):
            os.unlink(self._link)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self._gen += 1

    def _write_locked(self, line: bytes) -> bool:
        """One os.write to the master; never blocks. Unread output beyond the tty buffer is discarded."""
        if self._master is None or self._slave is None:
            self.frames_dropped += 1
            return False
        queued = int.from_bytes(fcntl.ioctl(self._slave, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
        if queued + len(line) > TTY_QUEUE_LIMIT:
            termios.tcflush(self._slave, termios.TCIFLUSH)  # nobody reads: behave like a closed port
        try:
            n = os.write(self._master, line)
        except (BlockingIOError, OSError):
            self.frames_dropped += 1
            return False
        if n < len(line):
            self.frames_dropped += 1
            return False
        self.frames_sent += 1
        return True

    def _reader_loop(self) -> None:
        buf = b""
        buf_gen = -1
        while not self._stop.is_set():
            with self._lock:
                fd, gen = self._master, self._gen
            if fd is None:
                self._stop.wait(0.02)
                continue
            try:
                ready, _, _ = select.select([fd], [], [], 0.1)
            except (OSError, ValueError):  # the cable was pulled under us
                continue
            if not ready:
                continue
            with self._lock:
                if gen != self._gen:
                    continue
                try:
                    chunk = os.read(fd, 4096)
                except (BlockingIOError, OSError):
                    continue
                if gen != buf_gen:
                    buf, buf_gen = b"", gen
                buf += chunk
                *lines, buf = buf.split(b"\n")
                if len(buf) > MAX_PENDING_LINE:
                    buf = b""
                    self.ignored_lines += 1
                for line in lines:
                    reply = self._serial_line_locked(line.strip())
                    if reply is not None:
                        self._send_feedback_locked(reply)

    def _serial_line_locked(self, line: bytes) -> dict[str, Any] | None:
        if not line:
            return None
        if len(line) + 1 >= MAX_COMMAND_BYTES or time.monotonic() < self._blocked_until:
            self.ignored_lines += 1
            return None
        cmd = parse_command(line)
        if cmd is None:
            self.ignored_lines += 1
            return None
        try:
            return self._execute_locked(cmd)
        except (TypeError, ValueError):
            self.ignored_lines += 1
            return None

    # ------------------------------------------------------------------ the firmware
    def _execute_locked(self, cmd: dict[str, Any]) -> dict[str, Any] | None:
        """Act on one parsed command; returns the T:1051 reply for T:105. Malformed fields raise ValueError."""
        t = cmd["T"]
        now = time.monotonic()
        reply: dict[str, Any] | None = None
        if t in (T_JOINTS, T_JOINT):
            targets = command_joint_targets(cmd, np.zeros(len(JOINTS)))  # validate now, apply after the latency
            if not np.all(np.isfinite(targets)):
                raise ValueError("non-finite joint target")
            int(cmd.get("spd", 0))
            self.joint_commands.append(dict(cmd))
            self._queue_motion_locked(now, cmd)
        elif t == T_HOME:
            self._queue_motion_locked(now, cmd)
        elif t == T_QUERY:
            reply = self._feedback_locked()
        elif t == T_TORQUE:
            on = int(cmd.get("cmd", -1))
            if on not in (0, 1):
                raise ValueError(f"T:210 cmd must be 0 or 1, got {on}")
            if on == 1 and self._estopped:  # the e-stop flag keeps the servos off until T:999
                self.ignored_lines += 1
                return None
            self._set_torque_locked(on == 1)
        elif t == T_ESTOP:
            self._set_torque_locked(False)
            self._estopped = True
            self._blocked_until = now + self.config.estop_block_s
        elif t == T_CLEAR_ESTOP:
            self._estopped = False
        elif t == T_LED:
            self.led = min(max(int(cmd.get("led", 0)), 0), 255)
        elif t == T_FLOW:
            mode = int(cmd.get("cmd", -1))
            if mode not in (0, 1, 2):
                raise ValueError(f"T:605 cmd {mode}")
            self._flow = mode == 2  # 1 is debug printing only: no feedback stream
        else:
            self.ignored_lines += 1
            return None
        self.commands_received += 1
        if t != T_QUERY:
            self.last_command = dict(cmd)
        return reply

    def _queue_motion_locked(self, now: float, cmd: dict[str, Any]) -> None:
        if self._torque and not self._estopped:
            self._pending.append((now + self.config.latency_s, dict(cmd)))
        # else: servos without torque (or after an e-stop) ignore position writes

    def _apply_due_locked(self, now: float) -> None:
        while self._pending and self._pending[0][0] <= now:
            _, cmd = self._pending.pop(0)
            reported_goal = self._goal - self._offset
            if cmd["T"] == T_HOME:
                goal = np.asarray(NAMED_POSES["home"], dtype=np.float64) + self._offset
                self._speed[:] = self.config.speed_rad_s
            else:
                goal = command_joint_targets(cmd, reported_goal) + self._offset  # firmware angles are offset
                speed = spd_speed(int(cmd.get("spd", 0))) or self.config.speed_rad_s
                if cmd["T"] == T_JOINT:
                    changed = np.arange(len(JOINTS)) == int(cmd.get("joint", 0)) - 1
                else:
                    changed = np.ones(len(JOINTS), dtype=bool)
                self._speed[changed] = np.minimum(speed, self._max_speed[changed])
            self._goal[:] = goal

    def _set_torque_locked(self, on: bool) -> None:
        """Limp: no actuator force, gear friction only. On: hold where the arm is now, like the real servos."""
        m = self._model
        q = self._data.qpos[:len(JOINTS)].copy()
        self._pending.clear()
        self._setpoint[:] = q
        self._goal[:] = q
        self._data.ctrl[self._act] = q
        if on:
            m.actuator_gainprm[self._act] = self._gain
            m.actuator_biasprm[self._act] = self._bias
            m.dof_frictionloss[self._dof] = self._friction
        else:
            m.actuator_gainprm[self._act, 0] = 0.0
            m.actuator_biasprm[self._act, 1:3] = 0.0
            m.dof_frictionloss[self._dof] = LIMP_GEAR_FRICTION_NM
        self._torque = on

    def _servo_step_locked(self) -> None:
        """Slew each setpoint toward its goal at the speed limit; within the deadband the servo does not move."""
        q = self._data.qpos[:len(JOINTS)]
        if self._torque:
            diff = self._goal - self._setpoint
            step = np.clip(diff, -self._speed * self.config.physics_dt, self._speed * self.config.physics_dt)
            step[np.abs(diff) <= self.config.deadband_rad] = 0.0
            self._setpoint += step
        else:
            self._setpoint[:] = q
            self._goal[:] = q
        self._data.ctrl[self._act] = self._setpoint

    def _feedback_locked(self) -> dict[str, Any] | None:
        """The T:1051 frame for the current state, as a faulty servo would report it; None while the arm is silent."""
        cfg = self.config
        if self._fault_scheduled and time.monotonic() - self._t0 >= float(cfg.fault_at_s or 0.0):
            self._fault_scheduled = False
            self._start_fault_locked(self._check_fault(cfg.fault_joint, cfg.fault_value_rad, cfg.fault_frames),
                                     cfg.fault_value_rad, cfg.fault_frames, cfg.silent_after_fault)
        if self._silent:
            return None
        q = self._data.qpos[:len(JOINTS)] - self._offset
        if self._fault is not None:
            index, value, left, then_silent = self._fault
            q = q.copy()
            q[index] = value
            if left is not None:
                self._fault[2] = left = left - 1
                if left <= 0:
                    self._fault, self._silent = None, then_silent
        # x, y, z: the true hand pose; the firmware computes FK from its (offset) readings, 2-3 mm off ours.
        tcp = world_to_firmware_mm(self._data.site_xpos[self._site])
        loads = np.rint(self._data.actuator_force[self._act] / self._effort * 1000.0)
        return feedback_message(q, tcp, loads)

    def _send_feedback_locked(self, msg: dict[str, Any] | None) -> None:
        """Write one feedback frame (None: none, the arm is silent), after fault injection (drop, garbage or
        torn, unpowered)."""
        cfg, rng = self.config, self._rng
        if msg is None:
            return
        if rng.random() < cfg.drop_rate:
            self.frames_dropped += 1
            return
        line = encode(msg)
        if rng.random() < cfg.garbage_rate:
            if rng.random() < 0.5:
                junk = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789:;,.~?\x00\xff") for _ in range(24))
                line = b"#" + junk + b"\n"  # never starts with '{': a baud-rate mismatch or a boot message
            else:
                line = line[: len(line) // 2] + b"\n"  # the rest of the frame was lost
        elif rng.random() < cfg.unpowered_rate:  # base and roll read +pi (same in URDF and firmware radians), no load
            line = encode({**msg, "b": round(math.pi, WIRE_DECIMALS), "r": round(math.pi, WIRE_DECIMALS),
                           **dict.fromkeys(LOAD_FIELDS, 0)})
        self._write_locked(line)

    # ------------------------------------------------------------------ physics thread
    def _physics_loop(self) -> None:
        """Step MuJoCo to the wall clock every few ms, stream feedback, and run the cable schedule."""
        period = 1.0 / self.config.feedback_hz
        next_frame = time.monotonic()
        sim_origin = self._t0 - self._data.time
        while not self._stop.is_set():
            now = time.monotonic()
            if self._pull_scheduled and now - self._t0 >= float(self.config.pull_cable_at_s or 0.0):
                self._pull_scheduled = False
                self.pull_cable(self.config.pull_cable_for_s)
            with self._lock:
                if self._reconnect_at is not None and now >= self._reconnect_at:
                    self._reconnect_at = None
                    self._open_pty_locked()
                self._apply_due_locked(now)
                lag = (now - sim_origin) - self._data.time
                if lag > MAX_LAG_S:  # stalled (debugger, overloaded machine): skip time rather than race
                    sim_origin += lag - MAX_LAG_S
                while self._data.time + 0.5 * self.config.physics_dt < now - sim_origin:
                    self._servo_step_locked()
                    mujoco.mj_step(self._model, self._data)
                if now >= next_frame:
                    if self._flow and now >= self._blocked_until:
                        self._send_feedback_locked(self._feedback_locked())
                    next_frame += period
                    if next_frame < now:
                        next_frame = now + period
            self._stop.wait(PHYSICS_TICK_S)

    # ------------------------------------------------------------------ HTTP
    def handle_http(self, query: str) -> tuple[int, bytes]:
        """``/js`` with ``json=<command>``: (status, body). T:105 answers the feedback JSON; others an empty body."""
        values = urllib.parse.parse_qs(query, keep_blank_values=True).get("json")
        if not values or len(values) != 1:
            return 400, b"expected exactly one json=<command> query parameter\n"
        cmd = parse_command(values[0])
        if cmd is None:
            return 400, b"json is not a JSON object with an integer T\n"
        with self._lock:
            if time.monotonic() < self._blocked_until:
                return 503, b"firmware blocked after an emergency stop (T:0)\n"
            try:
                reply = self._execute_locked(cmd)
            except (TypeError, ValueError) as exc:
                self.ignored_lines += 1
                return 400, f"bad command: {exc}".splitlines()[0].encode() + b"\n"
        return 200, (encode(reply).rstrip(b"\n") if reply is not None else b"")
