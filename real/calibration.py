"""Per-arm calibration: joint offsets and an optional narrower joint box, in a small YAML file.

Convention (the simulator's calibration-offset event uses the same): a servo with zero error ``o`` reads
``q_true - o``. So ``q_true = reading + offset`` and, to reach ``q_true``, the firmware is sent
``q_true - offset``. The guided routine measures ``offset = pose - reading`` at the named poses.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from roarm_lab.assets.joint_table import JOINTS, NAMED_POSES
from roarm_lab.utils.io import atomic_write_text

SHORT_NAMES = [j.short for j in JOINTS]


@dataclass
class Calibration:
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(len(JOINTS)))
    lower: np.ndarray = field(default_factory=lambda: np.array([j.lower for j in JOINTS]))
    upper: np.ndarray = field(default_factory=lambda: np.array([j.upper for j in JOINTS]))
    note: str = ""

    def __post_init__(self) -> None:
        safe_lo, safe_hi = np.array([j.lower for j in JOINTS]), np.array([j.upper for j in JOINTS])
        if np.any(self.lower < safe_lo - 1e-9) or np.any(self.upper > safe_hi + 1e-9) or np.any(self.lower >= self.upper):
            raise ValueError("calibration limits must lie inside the safe joint box "
                             f"{dict(zip(SHORT_NAMES, zip(safe_lo.round(3), safe_hi.round(3))))}")
        if np.any(np.abs(self.offsets) > 0.3):
            raise ValueError(f"calibration offsets {dict(zip(SHORT_NAMES, self.offsets.round(3)))} exceed 0.3 rad: "
                             "re-run the calibration (was the arm at the named pose when you pressed Enter?)")

    def to_true(self, reported: np.ndarray) -> np.ndarray:
        return reported + self.offsets

    def to_firmware(self, true_q: np.ndarray) -> np.ndarray:
        return true_q - self.offsets

    def clamp(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.lower, self.upper)

    @classmethod
    def load(cls, path: str | Path | None) -> "Calibration":
        if path is None:
            return cls()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no calibration file at {path}; make one with scripts/calibrate_real.py or "
                                    "leave --calibration out to run uncalibrated")
        doc = yaml.safe_load(path.read_text()) or {}
        unknown = set(doc.get("offsets", {})) - set(SHORT_NAMES) | set(doc.get("limits", {})) - set(SHORT_NAMES)
        if unknown:
            raise ValueError(f"{path}: unknown joints {sorted(unknown)}; valid: {SHORT_NAMES}")
        offsets = np.array([float(doc.get("offsets", {}).get(n, 0.0)) for n in SHORT_NAMES])
        limits = doc.get("limits", {})
        lower = np.array([float(limits.get(n, (j.lower, j.upper))[0]) for n, j in zip(SHORT_NAMES, JOINTS)])
        upper = np.array([float(limits.get(n, (j.lower, j.upper))[1]) for n, j in zip(SHORT_NAMES, JOINTS)])
        return cls(offsets, lower, upper, str(doc.get("note", "")))

    def save(self, path: str | Path) -> Path:
        doc = {
            "note": self.note or f"measured {datetime.datetime.now().isoformat(timespec='seconds')}",
            "offsets": {n: round(float(v), 5) for n, v in zip(SHORT_NAMES, self.offsets)},
            "limits": {n: [round(float(lo), 5), round(float(hi), 5)]
                       for n, lo, hi in zip(SHORT_NAMES, self.lower, self.upper)},
        }
        return atomic_write_text(path, "# RoArm-M3 calibration: q_true = reading + offset (rad, URDF joints)\n"
                                 + yaml.safe_dump(doc, sort_keys=False))


def measure_offsets(read_mean: Callable[[], np.ndarray], ask: Callable[[str], None],
                    poses: tuple[str, ...] = ("home", "observe", "ready")) -> Calibration:
    """The guided routine: for each named pose, ``ask`` the person to put the limp arm there, then
    ``read_mean`` the reported joints; the offset is the mean of ``pose - reading`` over the poses."""
    diffs = []
    for name in poses:
        pose = np.array(NAMED_POSES[name])
        ask(f"move the arm by hand to '{name}' {dict(zip(SHORT_NAMES, pose.round(3)))} and press Enter")
        diffs.append(pose - read_mean())
    return Calibration(offsets=np.mean(diffs, axis=0), note=f"from poses {list(poses)}")
