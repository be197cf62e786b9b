"""The one implementation of the action convention: a policy's action to clamped, step-limited joint targets.

The task's servo action term runs it on torch tensors in the simulator; the gateway and the real-arm bridge run
it on numpy arrays (``ActionConvention``) with the numbers ``policy.json`` exports. Same code, so the arm gets what
the simulator trained with.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _clip(x: Any, lower: Any, upper: Any) -> Any:
    if isinstance(x, np.ndarray):
        return np.minimum(np.maximum(x, lower), upper)  # np.clip's dispatch costs more than the work here
    import torch

    return torch.clamp(x, lower, upper)


def desired_targets(action: Any, previous: Any, offset: Any, scale: Any, relative: bool) -> Any:
    """What the action asks for, before the box: ``previous + scale * action`` (relative) or
    ``offset + scale * action`` (absolute)."""
    return (previous if relative else offset) + scale * action


def clamp_targets(desired: Any, previous: Any, lower: Any, upper: Any, max_step: float | None) -> Any:
    """Into the safe box, then at most ``max_step`` from the previous target (itself brought into the box)."""
    target = _clip(desired, lower, upper)
    if max_step is not None:
        inside = _clip(previous, lower, upper)
        target = inside + _clip(target - inside, -max_step, max_step)
    return target
