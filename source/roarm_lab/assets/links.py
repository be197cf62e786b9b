"""RoArm-M3 link facts: inertials (placeholders from the official URDF) and geometric envelopes.

The masses sum to 0.449 kg while the real arm weighs about 1 kg: the task randomizes them widely.
The envelopes (axis-aligned boxes in each link frame, from the official meshes' bounding boxes) size
the primitive visual and collision boxes of the project's own model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinkSpec:
    name: str
    mass: float
    com: tuple[float, float, float]
    inertia_diag: tuple[float, float, float]
    envelope_min_mm: tuple[float, float, float]
    envelope_max_mm: tuple[float, float, float]

    @property
    def box_center(self) -> tuple[float, float, float]:
        """Centre of the envelope box in metres, in the link frame."""
        return tuple((lo + hi) / 2000.0 for lo, hi in zip(self.envelope_min_mm, self.envelope_max_mm))  # type: ignore[return-value]

    @property
    def box_size(self) -> tuple[float, float, float]:
        """Full edge lengths of the envelope box in metres."""
        return tuple((hi - lo) / 1000.0 for lo, hi in zip(self.envelope_min_mm, self.envelope_max_mm))  # type: ignore[return-value]


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
