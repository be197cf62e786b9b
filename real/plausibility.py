"""Whether a feedback frame can be true: the driver's test before a frame becomes the arm's state.

``parse_feedback`` judges a line on its own (JSON, fields, finite, powered). A finite frame can still be
impossible: a joint far outside the box the servos are kept in, or a joint that moved faster than a servo
can. Such a frame is a *fault*: the driver does not act on it, holds the last command it sent, and stops
after a short run of them (``RoArmDriver``). Limits and speeds come from the joint table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roarm_lab.assets.joint_table import JOINTS, JointSpec, safe_box
from roarm_lab.real.protocol import Feedback

BOX_MARGIN_RAD = 0.1
"""How far outside the box a reading may be and still be true: the servos settle within 0.01 rad, and an arm
left by hand at the calibration's last pose ('ready') reads 0.05 rad outside the wrist's limit."""
FRAME_TIME_SLACK_S = 0.1
"""Frames read in one go share an arrival time, though the arm sent them a frame period (43 ms at 23 Hz) or two
apart: the speed test allows for this much time on top of the arrival times."""


@dataclass(frozen=True)
class Fault:
    """One implausible reading: which joint, what the arm sent, and the limit it broke."""

    joint: JointSpec
    value: float
    """The joint's value in true URDF radians (calibrated)."""
    raw: object
    """The firmware field as the arm sent it."""
    why: str

    def __str__(self) -> str:
        return (f"the arm reported {self.joint.short} {self.value:.6g} rad "
                f"({self.joint.feedback_field}={self.raw!r} in its T:1051), {self.why}")


@dataclass(frozen=True)
class FeedbackLimits:
    """A plausible frame lies within ``margin_rad`` of the box and moved no joint faster than ``speed_rad_s``."""

    lower: np.ndarray
    upper: np.ndarray
    speed_rad_s: np.ndarray | None
    """Per joint; None: no speed test (an arm moved by hand)."""
    margin_rad: float = BOX_MARGIN_RAD

    @classmethod
    def servo_driven(cls) -> "FeedbackLimits":
        """The safe joint box and the servos' speed ceiling (``JointSpec.velocity``): an arm under the driver."""
        return cls(*safe_box(), np.array([j.velocity for j in JOINTS]))

    def fault(self, fb: Feedback, previous: Feedback | None) -> Fault | None:
        """The first broken limit of ``fb`` (true radians), against the last plausible frame; None if plausible."""
        out = np.maximum(self.lower - fb.q, fb.q - self.upper)
        i = int(np.argmax(out))
        if out[i] > self.margin_rad:
            return Fault(JOINTS[i], float(fb.q[i]), fb.raw.get(JOINTS[i].feedback_field),
                         f"outside the joint box [{self.lower[i]:.3f}, {self.upper[i]:.3f}] by more than "
                         f"{self.margin_rad} rad")
        if self.speed_rad_s is None or previous is None:
            return None
        dt = max(fb.received - previous.received, 0.0)
        moved = np.abs(fb.q - previous.q)
        over = moved - self.speed_rad_s * (dt + FRAME_TIME_SLACK_S)
        i = int(np.argmax(over))
        if over[i] > 0:
            return Fault(JOINTS[i], float(fb.q[i]), fb.raw.get(JOINTS[i].feedback_field),
                         f"{moved[i]:.3f} rad from its last reading {previous.q[i]:.6g} in {dt:.3f} s: faster than "
                         f"the servos move ({self.speed_rad_s[i]:g} rad/s)")
        return None
