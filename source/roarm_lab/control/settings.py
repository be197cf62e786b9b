"""What the operator decided when starting a face (a request from the face cannot change any of it)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from roarm_lab import DEFAULT_TASK
from roarm_lab.control.layout import ProjectPaths


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
    default_task: str = DEFAULT_TASK

    @property
    def stop_file(self) -> Path:
        return self.paths.stop_file


def settings_from(args: argparse.Namespace) -> LabSettings:
    """The settings a face's command line chose (``--root``, ``--logs``, ``--allow-real-arm``, the arm's link),
    the rest from ``configs/real.yaml``."""
    from roarm_lab.rl.run_setup import script_defaults

    real = script_defaults("real")
    return LabSettings(paths=ProjectPaths.at(args.root, args.logs), real=RealArmSettings(
        allow=args.allow_real_arm,
        robot=args.robot or ("serial" if args.serial_port else "http" if args.arm_http else real.get("robot", "serial")),
        port=args.serial_port or real.get("port", "/dev/ttyUSB0"), http=args.arm_http or real.get("http", "192.168.4.1"),
        calibration=args.calibration or real.get("calibration"),
        target_time_s=float(args.target_time_s or real.get("target_time_s", 4.0))))
