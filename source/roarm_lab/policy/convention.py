"""policy.json's action convention as code: raw action to clamped joint targets, and the safe hold.

The one implementation of the conversion the simulator's action term applies: the gateway serves it, the
real-arm bridge and the simulator service call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from roarm_lab.policy.compiled import targets_kernel
from roarm_lab.policy.targets import clamp_targets, desired_targets
from roarm_lab.assets.joint_table import JOINTS
from roarm_lab.policy.spec import check_spec, measured_slice

_BOX = {j.name: (j.lower, j.upper) for j in JOINTS}


NOT_FINITE_MESSAGE = ("the policy's action or joint target is NaN or Inf for this observation (a value out of "
                      "range?); nothing was applied: hold the current targets")


class NotFiniteError(ValueError):
    """The policy's action or the integrated target is NaN or Inf: nothing is committed, the caller holds."""

    code = "not_finite"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class ClientTargets:
    """The joint targets a client is driving towards (initialised from its first observation)."""

    target: np.ndarray | None = None


class ActionConvention:
    """policy.json's action block as code: raw action to clamped joint targets, the safe hold target.

    The one implementation of the conversion: the gateway serves it, the real-arm bridge calls it. The limits
    are policy.json's intersected with the joint table's safe box (a file can narrow the box, never widen it).
    """

    def __init__(self, meta: dict[str, Any], compiled: bool = False):
        """``compiled``: convert with ``compiled.targets_kernel`` when numba is there (the gateway's per-request
        path); False: ``policy.targets`` on numpy, the rule itself (the parity test compares the two)."""
        check_spec(meta)
        act = meta["action"]
        self.size = int(act["size"])
        self.joint_names = list(act["joint_names"])
        box = np.array([_BOX[j] for j in self.joint_names], dtype=np.float32)
        self.scale = np.asarray(act["scale"], dtype=np.float32)
        self.lower = np.maximum(np.asarray(act["lower"], dtype=np.float32), box[:, 0])
        self.upper = np.minimum(np.asarray(act["upper"], dtype=np.float32), box[:, 1])
        self.offset = np.asarray(act["offset"], dtype=np.float32)
        self.relative = act.get("mode", "absolute") == "relative"
        self.max_step = act.get("max_step")
        self.default = np.array([meta["default_joint_pos"][j] for j in self.joint_names], dtype=np.float32)
        self._joint_pos_slice = measured_slice(meta)
        self._kernel = targets_kernel() if compiled else None
        self._max_step32 = np.float32(-1.0 if self.max_step is None else self.max_step)

    def measured_joint_pos(self, obs: np.ndarray) -> np.ndarray | None:
        """The action joints' measured positions, read back from the spec's measured term (rel. default)."""
        if self._joint_pos_slice is None:
            return None
        return obs[self._joint_pos_slice] + self.default

    def _start(self, obs: np.ndarray) -> np.ndarray:
        """Where a client without targets starts: relative from the measured pose, absolute from the offset."""
        measured = self.measured_joint_pos(obs) if self.relative else None
        return (measured if measured is not None else self.offset).astype(np.float32)

    def to_targets(self, action: np.ndarray, obs: np.ndarray, state: ClientTargets) -> tuple[np.ndarray, list[bool]]:
        """Joint targets from a raw action (the convention of policy.json), clamped; clipping flagged per joint.

        A non-finite action or target raises ``NotFiniteError`` before ``state`` changes (no poisoned integrator).
        """
        previous = state.target if state.target is not None else self._start(obs)
        action = action[: self.size]  # the arm's term leads the output (policy.json's action_terms); a gripper's follows
        if self._kernel is not None and self._kernel_takes(action, previous):
            target, clipped = np.empty(self.size, np.float32), np.empty(self.size, np.bool_)
            if not self._kernel(np.require(action, requirements="CW"), np.require(previous, requirements="CW"),
                                self.offset, self.scale,
                                self.relative, self.lower, self.upper, self._max_step32, target, clipped):
                raise NotFiniteError(NOT_FINITE_MESSAGE)
            state.target = target
            return target, clipped.tolist()
        desired = desired_targets(action, previous, self.offset, self.scale, self.relative)
        # non-finite exactly when the action (or a start read from the observation) is: one check covers both,
        # before any clamp could turn an Inf into a finite limit
        if not np.isfinite(desired).all():
            raise NotFiniteError(NOT_FINITE_MESSAGE)
        lower, upper = self.lower, self.upper
        clipped = ((desired < lower) | (desired > upper)).tolist()
        target = clamp_targets(desired, previous, lower, upper, self.max_step)
        state.target = target.astype(np.float32)
        return state.target, clipped

    def _kernel_takes(self, action: np.ndarray, previous: np.ndarray) -> bool:
        """float32 arrays of the right sizes (what the gateway passes); anything else takes the rule itself, which
        rounds and broadcasts as numpy does (a float64 action is not rounded to float32 first, a short one raises)."""
        return (isinstance(action, np.ndarray) and isinstance(previous, np.ndarray) and action.dtype == np.float32
                and previous.dtype == np.float32 and action.shape == (self.size,) and previous.shape == (self.size,))

    def hold_targets(self, obs: np.ndarray, state: ClientTargets, commit: bool = True) -> np.ndarray:
        """The safe action: keep the current targets (or the measured pose, in the box, if there are none yet).

        ``commit=False`` leaves a client without targets without them (the observation is not to be trusted).
        """
        if state.target is not None:
            return state.target
        measured = self.measured_joint_pos(obs)
        start = np.clip(measured if measured is not None else self.offset, self.lower, self.upper).astype(np.float32)
        if not np.isfinite(start).all():
            return np.clip(self.default, self.lower, self.upper)  # never a NaN target; the state stays empty
        if commit:
            state.target = start
        return start
