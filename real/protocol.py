"""The RoArm-M3 firmware's JSON protocol (v0.84): command builders and a strict T:1051 feedback parser.

One JSON object per line. Joint angles go through the joint table's URDF-to-firmware mapping
(``roarm_lab.assets.joint_table``: the gripper is ``hand = pi - q``), never restated here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from roarm_lab.assets.joint_table import JOINTS

T_FEEDBACK = 1051
T_JOINTS = 102
T_JOINT = 101
T_QUERY = 105
T_TORQUE = 210
T_LED = 114
T_FLOW = 605
T_HOME = 100
T_ESTOP = 0
T_CLEAR_ESTOP = 999
MAX_COMMAND_BYTES = 256
STEPS_PER_TURN = 4096
"""Servo encoder steps per revolution: ``spd`` is in steps per second, and 0 means the servos' full speed."""
WIRE_DECIMALS = 4
"""Joint angles go on the wire rounded to this many decimals (1e-4 rad)."""
MOTION_COMMANDS = frozenset({T_HOME, T_JOINT, T_JOINTS, 104, 1041, 106, 122})
"""Every command that moves a joint (T:104 / 1041 Cartesian, T:106 hand, T:122 degrees): the driver sends only
T:102, built by its one clamp."""
FIRMWARE_CLAMPS = {"base": (-math.pi, math.pi), "shoulder": (-math.pi / 2, math.pi / 2),
                   "elbow": (-0.785, 3.14), "wrist": (-math.pi / 2, math.pi / 2), "roll": (-math.pi, math.pi),
                   "hand": (1.074, 5.21)}
"""What the firmware itself clamps each T:102 field to (firmware radians)."""
FEEDBACK_JOINT_FIELDS = tuple(j.feedback_field for j in JOINTS)
LOAD_FIELDS = ("tB", "tS", "tE", "tT", "tR", "tG")
UNPOWERED_ATOL = 1e-3


class FrameError(ValueError):
    """A line that is not a usable feedback frame; ``kind`` is garbage, torn, unpowered or other."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Feedback:
    """One T:1051 frame in the project's units: URDF joint radians (JOINTS order), hand position in mm."""

    received: float
    """``time.monotonic()`` when the line arrived."""
    q: np.ndarray
    tcp_mm: np.ndarray
    """Firmware Cartesian frame (origin on the base axis at shoulder height), as reported."""
    loads: np.ndarray
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    def age(self, now: float) -> float:
        return now - self.received


def encode(command: dict[str, Any]) -> bytes:
    """One command line; the firmware drops lines of 256 bytes or more.

    The last point before the wire: every number must be finite (``json.dumps`` would write ``NaN``, which
    the firmware reads as a position).
    """
    bad = [k for k, v in command.items() if isinstance(v, float) and not math.isfinite(v)
           or not isinstance(v, (int, float, str))]
    if bad:
        raise ValueError(f"refusing to send T:{command.get('T')} with {', '.join(f'{k}={command[k]!r}' for k in bad)}: "
                         "every value sent to the arm must be a finite number")
    line = json.dumps(command, separators=(",", ":"), allow_nan=False).encode() + b"\n"
    if len(line) >= MAX_COMMAND_BYTES:
        raise ValueError(f"command of {len(line)} bytes; the firmware accepts under {MAX_COMMAND_BYTES}")
    return line


def joints_command(q: Sequence[float], spd: int = 0, acc: int = 10) -> dict[str, Any]:
    """T:102 for all six joints given in URDF radians (JOINTS order)."""
    if len(q) != len(JOINTS):
        raise ValueError(f"T:102 needs {len(JOINTS)} joint values ({[j.short for j in JOINTS]}), got {len(q)}")
    cmd: dict[str, Any] = {"T": T_JOINTS}
    for j, value in zip(JOINTS, q):
        if not math.isfinite(float(value)):
            raise ValueError(f"T:102 {j.short} target is {float(value)}: joint targets must be finite")
        cmd[j.firmware_field] = round(j.to_firmware(float(value)), WIRE_DECIMALS)
    cmd["spd"], cmd["acc"] = int(spd), int(acc)
    return cmd


def command_joints(cmd: dict[str, Any]) -> np.ndarray:
    """The URDF joint values a T:102 carries, as written (no firmware clamp): what went on the wire."""
    return np.array([j.from_firmware(float(cmd[j.firmware_field])) for j in JOINTS])


def spd_for(speed_rad_s: float) -> int:
    """T:102's ``spd`` (steps/s) for a joint speed; at least 1, because 0 means full speed."""
    if not (math.isfinite(speed_rad_s) and speed_rad_s > 0):
        raise ValueError(f"a joint speed must be a positive number of rad/s, got {speed_rad_s}")
    return max(1, round(speed_rad_s * STEPS_PER_TURN / (2 * math.pi)))


def spd_speed(spd: int) -> float | None:
    """The joint speed (rad/s) a ``spd`` asks for; None for 0 (the servos' full speed)."""
    return spd * 2 * math.pi / STEPS_PER_TURN if spd > 0 else None


def firmware_range() -> tuple[np.ndarray, np.ndarray]:
    """The firmware's own clamps (``FIRMWARE_CLAMPS``) as (lower, upper) in URDF radians, JOINTS order."""
    ends = np.array([sorted(j.from_firmware(v) for v in FIRMWARE_CLAMPS[j.firmware_field]) for j in JOINTS])
    return ends[:, 0], ends[:, 1]


def torque_command(on: bool) -> dict[str, Any]:
    """T:210: torque on (hold) or off (limp); the non-blocking way to stop (T:0 blocks for 10 s)."""
    return {"T": T_TORQUE, "cmd": 1 if on else 0}


def led_command(level: int) -> dict[str, Any]:
    if not 0 <= int(level) <= 255:
        raise ValueError(f"LED level {level} is outside 0..255")
    return {"T": T_LED, "led": int(level)}


def query_command() -> dict[str, Any]:
    return {"T": T_QUERY}


def flow_feedback_command(stream: bool) -> dict[str, Any]:
    """T:605: cmd 2 streams feedback on every firmware loop, cmd 0 silences it."""
    return {"T": T_FLOW, "cmd": 2 if stream else 0}


def feedback_message(q: Sequence[float], tcp_mm: Sequence[float], loads: Sequence[float] | None = None) -> dict[str, Any]:
    """A T:1051 frame as the firmware writes it (the emulator's side of ``parse_feedback``)."""
    msg: dict[str, Any] = {"T": T_FEEDBACK, "x": round(float(tcp_mm[0]), 2), "y": round(float(tcp_mm[1]), 2),
                           "z": round(float(tcp_mm[2]), 2)}
    fw = {j.feedback_field: j.to_firmware(float(v)) for j, v in zip(JOINTS, q)}
    msg["tit"] = round(fw["s"] + fw["e"] + fw["t"] - math.pi / 2, 4)
    for name in FEEDBACK_JOINT_FIELDS:
        msg[name] = round(fw[name], 4)
    for name, value in zip(LOAD_FIELDS, loads if loads is not None else [0] * len(LOAD_FIELDS)):
        msg[name] = int(value)
    return msg


def parse_feedback(line: bytes | str, received: float) -> Feedback:
    """A T:1051 line to ``Feedback``; anything else raises ``FrameError`` saying what it was.

    A frame is judged here on its own (JSON, fields, finite, powered). Whether its values can be true (inside
    the joint box, no joint faster than the servos) needs the calibration and the previous frame: the
    driver's ``FeedbackLimits`` (``plausibility.py``) decides that.
    """
    text = line.decode("utf-8", "replace") if isinstance(line, (bytes, bytearray)) else line
    text = text.strip()
    try:
        msg = json.loads(text)
    except ValueError:
        kind = "torn" if text.startswith("{") or text.endswith("}") else "garbage"
        raise FrameError(kind, f"not JSON: {text[:40]!r}") from None
    if not isinstance(msg, dict):
        raise FrameError("garbage", f"not a JSON object: {text[:40]!r}")
    if msg.get("T") != T_FEEDBACK:
        raise FrameError("other", f"not feedback (T={msg.get('T')!r})")
    try:
        fw = [float(msg[name]) for name in FEEDBACK_JOINT_FIELDS]
        tcp = [float(msg[name]) for name in ("x", "y", "z")]
        loads = [float(msg.get(name, 0.0)) for name in LOAD_FIELDS]
    except (KeyError, TypeError, ValueError):
        raise FrameError("torn", "feedback frame misses a field") from None
    if not all(math.isfinite(v) for v in fw + tcp):
        raise FrameError("torn", "feedback frame holds NaN or Inf")
    if abs(fw[0] - math.pi) < UNPOWERED_ATOL and abs(fw[4] - math.pi) < UNPOWERED_ATOL:
        raise FrameError("unpowered", "base and roll read +pi: servos unpowered (is the 12 V supply on?)")
    q = np.array([j.from_firmware(v) for j, v in zip(JOINTS, fw)])
    return Feedback(received, q, np.array(tcp), np.array(loads), msg)


def parse_command(line: bytes | str) -> dict[str, Any] | None:
    """A command line as the firmware reads it: a JSON object with an integer T, else None (ignored)."""
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    kind = msg.get("T") if isinstance(msg, dict) else None
    if not isinstance(kind, int) or isinstance(kind, bool):  # {"T": false} must not read as T:0
        return None
    return msg


def command_joint_targets(cmd: dict[str, Any], current: np.ndarray) -> np.ndarray:
    """The URDF joint targets a T:102 or T:101 asks for, after the firmware's own clamps (emulator side)."""
    q = np.array(current, dtype=np.float64)
    if cmd.get("T") == T_JOINTS:
        for i, j in enumerate(JOINTS):
            if j.firmware_field in cmd:
                lo, hi = FIRMWARE_CLAMPS[j.firmware_field]
                value = float(cmd[j.firmware_field])
                if math.isfinite(value):  # min/max would pass NaN through
                    q[i] = j.from_firmware(min(max(value, lo), hi))
    elif cmd.get("T") == T_JOINT:
        i = int(cmd.get("joint", 0)) - 1
        if 0 <= i < len(JOINTS):
            j = JOINTS[i]
            lo, hi = FIRMWARE_CLAMPS[j.firmware_field]
            value = float(cmd.get("rad", 0.0))
            if math.isfinite(value):
                q[i] = j.from_firmware(min(max(value, lo), hi))
    return q
