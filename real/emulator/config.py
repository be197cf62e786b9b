"""What the emulated arm looks like to a driver: its settings, and the firmware facts it emulates."""

from __future__ import annotations

from dataclasses import dataclass

from roarm_lab.assets.joint_table import SERVO

ESTOP_BLOCK_S = 10.0
"""How long the firmware sleeps after T:0 (it reads no command meanwhile)."""
LIMP_GEAR_FRICTION_NM = 0.5
"""Backdriving torque of an unpowered geared servo: a limp arm stays where a hand leaves it."""
TTY_QUEUE_LIMIT = 4096
"""Bytes the client side may leave unread (Linux's n_tty buffer); beyond that the queue is discarded."""
PHYSICS_TICK_S = 0.003
"""The physics thread catches up with the wall clock this often, then sleeps (never busy-spins)."""
MAX_LAG_S = 0.1
"""If the process stalls longer than this, simulated time skips ahead instead of racing to catch up."""
MAX_PENDING_LINE = 4096
READY_PREFIX = "emulator ready"
JOINT_COMMAND_LOG = 10000
"""How many of the last joint commands (T:102 / T:101, as received) ``ArmEmulator.joint_commands`` keeps."""


@dataclass
class EmulatorConfig:
    """What the emulated arm looks like to a driver; the fault rates are probabilities per feedback frame."""

    link: str | None = None
    """Stable symlink to the pty slave (like /dev/serial/by-id/...); None: ``<fresh temp dir>/ttyRoArmEmu``."""
    http_port: int | None = None
    """None: no HTTP; 0: any free port on 127.0.0.1."""
    physics_dt: float = 0.002
    latency_s: float = SERVO.latency_s
    """Delay from a motion command's arrival to the servos starting to move."""
    speed_rad_s: float = SERVO.speed_rad_s
    """Setpoint slew limit for spd=0 ("maximum speed" through the usual command path)."""
    deadband_rad: float = SERVO.deadband_rad
    feedback_hz: float = 23.0
    flow_feedback: bool = True
    """The M3 firmware streams T:1051 by default; T:605 cmd 0 silences it."""
    calibration_offset: tuple[float, ...] = (0.0,) * 6
    """Reported joint position = true position - offset (URDF radians, JOINTS order)."""
    garbage_rate: float = 0.0
    """A frame becomes a garbage line or a torn half line (half each)."""
    drop_rate: float = 0.0
    unpowered_rate: float = 0.0
    """A frame reads like unpowered servos: base and roll at +pi."""
    seed: int = 0
    pull_cable_at_s: float | None = None
    """Seconds after start() to pull the USB cable once (for the CLI and benchmarks)."""
    pull_cable_for_s: float = 2.0
    estop_block_s: float = ESTOP_BLOCK_S
    fault_at_s: float | None = None
    """Seconds after start() from which feedback frames report ``fault_joint`` at ``fault_value_rad`` (finite but
    implausible: outside the joint box, or a jump no servo makes); None: never."""
    fault_joint: str = "base"
    fault_value_rad: float = 1e6
    """The value (reported URDF radians) the faulty frames give ``fault_joint``."""
    fault_frames: int | None = None
    """How many faulty frames; None: every frame from ``fault_at_s`` on."""
    silent_after_fault: bool = False
    """After the faulty frames the arm sends no feedback at all (stream and query replies); it still obeys commands."""
