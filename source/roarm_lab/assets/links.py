"""RoArm-M3 link facts: inertials (placeholders from the official URDF) and geometric envelopes.

The masses sum to 0.449 kg while the real arm weighs about 1 kg: the task randomizes them widely.
The envelopes (axis-aligned boxes in each link frame, from the official meshes' bounding boxes) size
the primitive visual and collision boxes of the project's own model. The hand is not one box: ``link5`` is a palm
and the fixed jaw, ``gripper_link`` the moving jaw, so a cube fits between them (``HAND_SHAPES``); the jaws'
faces meet at ``x = JAW_FACE_X_MM`` in ``link5`` when the gripper is closed (q6 = 0) and part as q6 opens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BoxShape:
    """One primitive box of a link in the link frame, turned ``yaw`` rad about the link's z axis; ``part`` names
    it (geoms: ``<link>_<part>``)."""

    part: str
    center: tuple[float, float, float]
    """Centre (m)."""
    size: tuple[float, float, float]
    """Full edge lengths (m), along the box's own axes."""
    yaw: float = 0.0

    @classmethod
    def spanning(cls, part: str, min_mm: tuple[float, float, float], max_mm: tuple[float, float, float]) -> "BoxShape":
        """The axis-aligned box between two corners given in mm."""
        return cls(part, tuple((lo + hi) / 2000.0 for lo, hi in zip(min_mm, max_mm)),  # type: ignore[arg-type]
                   tuple((hi - lo) / 1000.0 for lo, hi in zip(min_mm, max_mm)))  # type: ignore[arg-type]


def _finger(part: str, root_mm: tuple[float, float], tip_mm: tuple[float, float], z_mm: tuple[float, float],
            thickness_mm: float) -> BoxShape:
    """A finger whose inner face runs from ``root`` to ``tip`` (x, y in mm), ``thickness`` behind the face (+y)."""
    dx, dy = tip_mm[0] - root_mm[0], tip_mm[1] - root_mm[1]
    length = math.hypot(dx, dy)
    yaw = math.atan2(dy, dx)
    nx, ny = -math.sin(yaw), math.cos(yaw)  # the face's normal, away from the fixed jaw
    cx = (root_mm[0] + tip_mm[0]) / 2 + nx * thickness_mm / 2
    cy = (root_mm[1] + tip_mm[1]) / 2 + ny * thickness_mm / 2
    return BoxShape(part, (cx / 1000.0, cy / 1000.0, (z_mm[0] + z_mm[1]) / 2000.0),
                    (length / 1000.0, thickness_mm / 1000.0, (z_mm[1] - z_mm[0]) / 1000.0), yaw)


@dataclass(frozen=True)
class LinkSpec:
    name: str
    mass: float
    com: tuple[float, float, float]
    inertia_diag: tuple[float, float, float]
    envelope_min_mm: tuple[float, float, float]
    envelope_max_mm: tuple[float, float, float]

    @property
    def shapes(self) -> tuple[BoxShape, ...]:
        """The link's visual and collision boxes: its own hand parts, else one box, the envelope."""
        return HAND_SHAPES.get(self.name, (BoxShape.spanning("collision", self.envelope_min_mm, self.envelope_max_mm),))


LINKS: tuple[LinkSpec, ...] = (
    LinkSpec("base_link", 0.2562183, (-0.0068, 0.0, -0.03), (2.9211e-4, 3.5719e-4, 3.49421e-4),
             (-56.0, -40.8, -71.1), (42.5, 40.8, 1.5)),
    LinkSpec("link1", 0.0729177, (0.0, 0.0, 0.037), (4.68465e-5, 3.32107e-5, 5.01023e-5),
             (-27.4, -36.2, 1.5), (27.4, 36.2, 62.1)),
    LinkSpec("link2", 0.0703216, (0.119, 0.012247, -0.0001), (5.46501e-5, 4.23091e-4, 4.04557e-4),
             (-10.0, -15.5, -39.6), (246.8, 40.0, 39.4)),
    LinkSpec("link3", 0.021608, (-0.0015, -0.0765, 0.00505), (6.37699e-5, 3.67026e-6, 6.28965e-5),
             (-15.5, -154.7, -17.5), (12.4, 10.1, 18.0)),
    LinkSpec("link4", 0.0099933, (-0.0015, -0.022, -0.00075), (4.53979e-6, 3.78103e-6, 5.60238e-6),
             (-28.7, -52.3, -20.2), (25.3, 9.5, 20.2)),
    LinkSpec("link5", 0.0153928, (-0.0078, 0.0, 0.0595), (2.02869e-5, 2.14427e-5, 4.39495e-6),
             (-31.0, -17.7, -0.7), (15.5, 17.8, 119.9)),
    LinkSpec("gripper_link", 0.0028708, (0.027, 0.0027, -0.018935), (5.23216e-7, 1.82071e-6, 1.60231e-6),
             (-10.8, -10.0, -38.6), (67.1, 15.2, 0.8)),
)

JAW_FACE_X_MM = -10.0
"""The fixed jaw's inner face in ``link5`` (x, mm). The moving jaw's pivot is on x = 0 and its y axis is
``link5``'s x at q6 = 0, so its tip, at y = JAW_FACE_X_MM of ``gripper_link``, meets the fixed jaw when closed."""

JAW_TILT_RAD = 0.46
"""The moving jaw is a claw: its face leans toward the fixed jaw by this angle, so the faces are parallel at
q6 = JAW_TILT_RAD, 3.1 cm apart, and a 2.5 to 3 cm cube is held flat between them rather than on an edge."""

_JAW_ROOT_X_MM, _JAW_TIP_X_MM = 15.0, 67.1

HAND_SHAPES: dict[str, tuple[BoxShape, ...]] = {
    # the palm (servo and bracket) up to the jaws' roots, and the fixed jaw along the hand axis to the tip
    "link5": (BoxShape.spanning("palm_collision", (-31.0, -17.7, -0.7), (15.5, 17.8, 58.0)),
              BoxShape.spanning("fixed_jaw_collision", (-20.0, -12.0, 58.0), (JAW_FACE_X_MM, 12.0, 119.9))),
    # the moving jaw: its hub at the pivot, then the finger (inside the envelope of ``gripper_link``)
    "gripper_link": (
        BoxShape.spanning("hub_collision", (-10.8, JAW_FACE_X_MM, -38.6), (_JAW_ROOT_X_MM, 15.2, 0.8)),
        _finger("jaw_collision",
                (_JAW_ROOT_X_MM, JAW_FACE_X_MM + (_JAW_TIP_X_MM - _JAW_ROOT_X_MM) * math.tan(JAW_TILT_RAD)),
                (_JAW_TIP_X_MM, JAW_FACE_X_MM), (-30.8, -6.8), 7.0)),
}
"""The hand's boxes, inside the envelopes of ``link5`` and ``gripper_link`` (ROARM_M3.md)."""

# Pairs whose envelopes touch by construction (the SRDF's disabled collision pairs): never checked.
DISABLED_COLLISIONS: tuple[tuple[str, str], ...] = (
    ("base_link", "link1"), ("base_link", "link2"), ("base_link", "link3"),
    ("gripper_link", "link3"), ("gripper_link", "link4"), ("gripper_link", "link5"),
    ("link1", "link2"), ("link1", "link3"), ("link2", "link3"),
    ("link3", "link4"), ("link3", "link5"), ("link4", "link5"),
)


DISTAL_LINKS: tuple[str, ...] = ("link3", "link4", "link5", "gripper_link")
"""The links that can touch the table or the base inside the safe joint box (the others cannot reach either)."""


def link(name: str) -> LinkSpec:
    for spec in LINKS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown link '{name}'; valid: {[s.name for s in LINKS]}")
