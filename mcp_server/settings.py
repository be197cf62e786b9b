"""What the operator decided when starting the server (the model cannot change any of it)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from roarm_lab.jobs.paths import ProjectPaths


class LabError(ValueError):
    """A request the lab refuses; the message says what to do instead (becomes a ToolError)."""


@dataclass(frozen=True)
class RealArmSettings:
    allow: bool = False
    """Real-arm motion at all (``--allow-real-arm``); even then every run is confirmed by the user."""
    robot: str = "serial"
    """serial | http | emu (the firmware emulator, started by each run)."""
    port: str = "/dev/ttyUSB0"
    http: str = "192.168.4.1"
    calibration: str | None = None
    target_time_s: float = 4.0


@dataclass(frozen=True)
class LabSettings:
    paths: ProjectPaths = field(default_factory=ProjectPaths.at)
    real: RealArmSettings = field(default_factory=RealArmSettings)
    python: str = sys.executable
    default_task: str = "RoArm-Reach-v0"

    @property
    def stop_file(self) -> Path:
        """The real-arm bridge torque-holds and exits when this file exists (emergency_stop writes it)."""
        return self.paths.real / "STOP"
