"""The RoArm-M3 joint table: the one place that names, limits, homes, gains and firmware fields live.

Everything else (the URDF writer, the MuJoCo model, the task's action term and limits, the export
metadata, the real-arm driver) reads this table. Kinematic origins come from the official chain in
``docs/robot.md``; limits are the *safe joint box* from that page, not the wider published ones.

Drive choices (the official URDF says 0 for effort and velocity):

* ``effort`` 2.9 N m: the serial bus servo's stall torque at 12 V.
* ``velocity`` 5.2 rad/s: the servo speed ceiling (3400 steps/s at 4096 steps/turn).
* ``kp`` / ``kv``: a stiff position loop that settles within about 0.03 rad under the arm's own
  weight and is critically damped with the reflected rotor inertia (``armature``), so the MuJoCo
  step of 1/60 s stays stable (omega * dt < 1).
* ``armature`` 0.01 kg m^2: rotor inertia times the square of a ~1:345 gear ratio, which is what
  makes the servo feel heavy; it dominates the tiny link inertias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class JointSpec:
    """One revolute joint of the arm, with its model, drive and firmware facts."""

    name: str
    """URDF joint name."""
    short: str
    """Short name used in logs, metadata and the observation layout."""
    parent: str
    child: str
    origin_xyz: tuple[float, float, float]
    origin_rpy: tuple[float, float, float]
    lower: float
    """Lower bound of the safe joint box (rad)."""
    upper: float
    """Upper bound of the safe joint box (rad)."""
    home: float
    """Home (default) joint position (rad)."""
    firmware_field: str
    """Field of this joint in the T:102 command."""
    feedback_field: str
    """Field of this joint in the T:1051 feedback."""
    firmware_inverted: bool = False
    """If True the firmware angle is ``pi - q`` (the gripper), else it equals ``q``."""
    effort: float = 2.9
    velocity: float = 5.2
    kp: float = 20.0
    kv: float = 0.9
    armature: float = 0.01
    damping: float = 0.05
    friction: float = 0.01

    def to_firmware(self, q: float) -> float:
        """URDF radians to the firmware's radians for this joint."""
        return math.pi - q if self.firmware_inverted else q

    def from_firmware(self, value: float) -> float:
        """Firmware radians to URDF radians for this joint."""
        return math.pi - value if self.firmware_inverted else value


@dataclass(frozen=True)
class ServoSpec:
    """How the serial bus servos behave behind the firmware's T:102 (ROARM_M3.md; measured on the emulator's model).

    The task's servo model, the firmware emulator and the real-arm bridge all read these; the task randomizes
    around them.
    """

    latency_s: float = 0.2
    """From a command's arrival to the servos starting to move."""
    speed_rad_s: float = 2.0
    """Setpoint slew of a T:102 move at the default speed."""
    deadband_rad: float = 0.005
    """A servo does not move while its setpoint is this close to the goal."""
    max_step_rad: float = 0.1
    """Largest change of a joint target per 30 Hz control step (3 rad/s), in the task and in the bridge."""


SERVO = ServoSpec()

GRIP_TORQUE_NM = 0.3
"""The gripper servo's torque limit: about 10 % of stall (T:112 ``h`` ~ 100 of 1000). Enough to hold a 60 g cube
(~6 N per jaw), and what keeps a squeezed cube from being pressed through the jaws' soft contacts at the 60 Hz
physics step (at 2.9 N m MuJoCo's contacts give way and the cube is crushed out; ``tests/test_lift_physics.py``)."""

HALF_PI = math.pi / 2

JOINTS: tuple[JointSpec, ...] = (
    JointSpec("base_link_to_link1", "base", "base_link", "link1", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0),
              -math.pi, math.pi, 0.0, "base", "b"),
    JointSpec("link1_to_link2", "shoulder", "link1", "link2", (0.0, 0.0, 0.051959), (-HALF_PI, -HALF_PI, 0.0),
              -1.3, 1.1, 0.0, "shoulder", "s"),
    JointSpec("link2_to_link3", "elbow", "link2", "link3", (0.236815, 0.030002, 0.0), (0.0, 0.0, HALF_PI),
              -0.37, 2.73, HALF_PI, "elbow", "e"),
    JointSpec("link3_to_link4", "wrist", "link3", "link4", (0.0, -0.144586, 0.0), (0.0, 0.0, 0.0),
              -1.0, 1.4, 0.0, "wrist", "t"),
    JointSpec("link4_to_link5", "roll", "link4", "link5", (0.015147, -0.053653, 0.0), (HALF_PI, HALF_PI, 0.0),
              -math.pi, math.pi, 0.0, "roll", "r", kp=8.0, kv=0.3, armature=0.004),
    JointSpec("link5_to_gripper_link", "gripper", "link5", "gripper_link", (0.0, 0.018821, 0.052035),
              (-HALF_PI, -HALF_PI, 0.0), 0.0, 1.5, 0.0, "hand", "g", firmware_inverted=True,
              effort=GRIP_TORQUE_NM, kp=4.0, kv=0.1, armature=0.002),
)
"""All six revolute joints, root to tip."""

ARM_JOINTS: tuple[JointSpec, ...] = JOINTS[:5]
"""The five joints that position the hand (the reach task's action space)."""

GRIPPER_JOINT: JointSpec = JOINTS[5]

BASE_HEIGHT_M = 0.0701
"""Height of ``base_link`` above the table (the fixed ``world_to_base_link`` joint)."""

TCP_LINK = "link5"
TCP_FRAME = "hand_tcp"
TCP_ORIGIN_XYZ = (0.0, 0.0, 0.115428)
TCP_ORIGIN_RPY = (HALF_PI, -HALF_PI, 0.0)

GRASP_FRAME = "grasp_center"
GRASP_ORIGIN_XYZ = (0.004, 0.0, 0.110)
"""Where a held 3 cm cube's centre sits in ``link5``: against the fixed jaw's face (x = -10 mm, ``links.JAW_FACE_X_MM``)
plus half the cube, less the jaws' give, and as deep in the jaws as a scripted grasp from the table holds it (0.116
at the fixed jaw's tip; 0.104 higher up). The lift task's reaching and grasp terms use this frame: the TCP, on the
hand's axis at the fixed jaw's tip, would put the cube inside the fixed jaw."""


@dataclass(frozen=True)
class FrameSpec:
    """A frame welded to a link (no joint, no mass of its own): the TCP, the grasp centre."""

    name: str
    link: str
    xyz: tuple[float, float, float]
    rpy: tuple[float, float, float]


FRAMES: tuple[FrameSpec, ...] = (FrameSpec(TCP_FRAME, TCP_LINK, TCP_ORIGIN_XYZ, TCP_ORIGIN_RPY),
                                 FrameSpec(GRASP_FRAME, TCP_LINK, GRASP_ORIGIN_XYZ, (0.0, 0.0, 0.0)))

FIRMWARE_FRAME_OFFSET_M = (0.0, 0.0, 0.12206)
"""Firmware Cartesian origin in the world frame (on the base axis at shoulder-pivot height)."""

NAMED_POSES: dict[str, tuple[float, ...]] = {
    "home": (0.0, 0.0, HALF_PI, 0.0, 0.0, 0.0),
    "observe": (0.0, 0.0, HALF_PI, HALF_PI, 0.0, 0.0),
    "ready": (0.0, 0.0, 2.618, -1.0472, 0.0, 0.0),
}


def joint_names(joints: tuple[JointSpec, ...] = JOINTS) -> list[str]:
    """URDF names of the given joints, in order."""
    return [j.name for j in joints]


def joint(name: str) -> JointSpec:
    """Look up a joint by URDF or short name; the error lists the valid names."""
    for j in JOINTS:
        if name in (j.name, j.short):
            return j
    raise KeyError(f"unknown joint '{name}'; valid: {[j.short for j in JOINTS]} or {joint_names()}")


def safe_box(joints: tuple[JointSpec, ...] = JOINTS) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the safe joint box (rad): fresh arrays, so a caller can narrow its own copy."""
    return np.array([j.lower for j in joints]), np.array([j.upper for j in joints])


def home_pose(joints: tuple[JointSpec, ...] = JOINTS) -> list[float]:
    return [j.home for j in joints]


def to_firmware_command(q: dict[str, float]) -> dict[str, float]:
    """Map URDF joint positions keyed by short name to T:102 fields (gripper: ``hand = pi - q``)."""
    return {joint(k).firmware_field: joint(k).to_firmware(v) for k, v in q.items()}


def from_firmware_feedback(feedback: dict[str, float]) -> dict[str, float]:
    """Map a T:1051 feedback dict to URDF joint positions keyed by short name."""
    return {j.short: j.from_firmware(float(feedback[j.feedback_field])) for j in JOINTS}
