"""Per-arm calibration: joint offsets and an optional narrower joint box, in a small YAML file.

Convention (the simulator's calibration-offset event uses the same): a servo with zero error ``o`` reads
``q_true - o``. So ``q_true = reading + offset`` and, to reach ``q_true``, the firmware is sent
``q_true - offset``. The guided routine measures ``offset = pose - reading`` at the named poses.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from roarm_lab.assets.joint_table import JOINTS, NAMED_POSES, safe_box
from roarm_lab.utils.files import UnsafeFileError, read_bounded_text
from roarm_lab.utils.io import atomic_write_text

SHORT_NAMES = [j.short for j in JOINTS]
MAX_CALIBRATION_BYTES = 64 * 1024
MAX_OFFSET_RAD = 0.3
"""A larger offset means the arm was not at the named pose when the reading was taken."""


@dataclass
class Calibration:
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(len(JOINTS)))
    lower: np.ndarray = field(default_factory=lambda: safe_box()[0])
    upper: np.ndarray = field(default_factory=lambda: safe_box()[1])
    note: str = ""

    def __post_init__(self) -> None:
        safe_lo, safe_hi = safe_box()
        for name, values in (("offsets", self.offsets), ("lower limits", self.lower), ("upper limits", self.upper)):
            if np.shape(values) != (len(JOINTS),) or not np.all(np.isfinite(values)):
                raise ValueError(f"calibration {name} must be {len(JOINTS)} finite numbers ({SHORT_NAMES}), got "
                                 f"{np.asarray(values).tolist()}")
        outside = [f"limits.{n} [{lo:.4g}, {hi:.4g}]" for n, lo, hi, slo, shi in
                   zip(SHORT_NAMES, self.lower, self.upper, safe_lo, safe_hi) if lo < slo - 1e-9 or hi > shi + 1e-9 or lo >= hi]
        if outside:
            raise ValueError(f"calibration {', '.join(outside)} must lie inside the safe joint box "
                             f"{dict(zip(SHORT_NAMES, zip(safe_lo.round(3), safe_hi.round(3))))} (lower < upper)")
        large = [f"offsets.{n} {v:.3f}" for n, v in zip(SHORT_NAMES, self.offsets) if abs(v) > MAX_OFFSET_RAD]
        if large:
            raise ValueError(f"calibration {', '.join(large)} exceed {MAX_OFFSET_RAD} rad: re-run the calibration "
                             "(was the arm at the named pose when you pressed Enter?)")

    def to_true(self, reported: np.ndarray) -> np.ndarray:
        return reported + self.offsets

    def to_firmware(self, true_q: np.ndarray) -> np.ndarray:
        return true_q - self.offsets

    def clamp(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.lower, self.upper)

    @classmethod
    def load(cls, path: str | Path | None) -> "Calibration":
        """A calibration YAML, checked as a whole: every problem is named by its field (``offsets.base``, ...)."""
        if path is None:
            return cls()
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no calibration file at {path}; make one with scripts/calibrate_real.py or "
                                    "leave --calibration out to run uncalibrated")
        try:
            doc = yaml.safe_load(read_bounded_text(path, MAX_CALIBRATION_BYTES, "calibration file"))
        except UnsafeFileError as err:
            raise ValueError(str(err)) from None
        except yaml.YAMLError as err:
            raise ValueError(f"{path} is not valid YAML ({str(err).splitlines()[0]}); re-run scripts/calibrate_real.py") from None
        offsets, lower, upper, bad = calibration_fields(doc if doc is not None else {})
        if bad:
            raise ValueError(f"{path}: {'; '.join(bad)}; fix these fields or re-run scripts/calibrate_real.py")
        try:
            return cls(offsets, lower, upper, str(doc.get("note", "")) if doc else "")
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def save(self, path: str | Path) -> Path:
        doc = {
            "note": self.note or f"measured {datetime.datetime.now().isoformat(timespec='seconds')}",
            "offsets": {n: round(float(v), 5) for n, v in zip(SHORT_NAMES, self.offsets)},
            "limits": {n: [round(float(lo), 5), round(float(hi), 5)]
                       for n, lo, hi in zip(SHORT_NAMES, self.lower, self.upper)},
        }
        return atomic_write_text(path, "# RoArm-M3 calibration: q_true = reading + offset (rad, URDF joints)\n"
                                 + yaml.safe_dump(doc, sort_keys=False))


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def calibration_fields(doc: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Offsets and limits from a calibration document, and the list of what is wrong in it (by field)."""
    offsets = np.zeros(len(JOINTS))
    lower, upper = safe_box()
    if not isinstance(doc, dict):
        return offsets, lower, upper, ["the file must be a mapping with offsets: and limits:"]
    bad = [f"unknown key '{k}' (valid: note, offsets, limits)" for k in doc if k not in ("note", "offsets", "limits")]
    for key in ("offsets", "limits"):
        if not isinstance(doc.get(key, {}), dict):
            bad.append(f"{key} must map joint names ({SHORT_NAMES}) to values")
    off = doc.get("offsets") if isinstance(doc.get("offsets"), dict) else {}
    lim = doc.get("limits") if isinstance(doc.get("limits"), dict) else {}
    bad += [f"unknown joint '{k}' in {where} (valid: {SHORT_NAMES})" for where, part in (("offsets", off), ("limits", lim))
            for k in part if k not in SHORT_NAMES]
    for i, name in enumerate(SHORT_NAMES):
        if name in off:
            if _finite(off[name]):
                offsets[i] = off[name]
            else:
                bad.append(f"offsets.{name} is {off[name]!r}: a finite number of radians")
        if name in lim:
            pair = lim[name]
            if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_finite(v) for v in pair):
                lower[i], upper[i] = pair
            else:
                bad.append(f"limits.{name} is {pair!r}: [lower, upper] in radians, finite numbers")
    return offsets, lower, upper, bad


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
