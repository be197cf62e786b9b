"""What drives the simulated arm each control step: held joint goals, a raw action for a few steps, or a
policy closed-loop. Each returns the raw action for the environment's own action term, which applies the
task's convention (relative targets, clamping, the per-step limit and the servo model) exactly as in training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from roarm_lab.sim_service.policies import ActionSource

SETTLE_STEPS = 5
"""A policy run "reaches" its target when the hand stays within the success threshold this many steps."""
TRACE_POINTS = 60


def action_toward(goal: np.ndarray, commanded: np.ndarray, offset: np.ndarray, scale: np.ndarray,
                  relative: bool) -> np.ndarray:
    """The raw action whose target is ``goal`` under the action term's convention (its inverse, for holding)."""
    base = commanded if relative else offset
    return ((goal - base) / scale).astype(np.float32)


@dataclass
class RawAction:
    action: np.ndarray
    steps_left: int

    @property
    def done(self) -> bool:
        return self.steps_left <= 0

    def next(self) -> np.ndarray:
        self.steps_left -= 1
        return self.action

    def status(self) -> dict[str, Any]:
        return {"kind": "action", "steps_left": self.steps_left, "done": self.done}


@dataclass
class PolicyRun:
    """A closed-loop run for ``max_steps`` steps, or until the hand is within ``threshold_m`` for a while."""

    source: ActionSource
    run_id: str
    """Names this run to status and stop_policy (a stop of an older run leaves a newer one running)."""
    max_steps: int
    until_reached: bool
    threshold_m: float
    target_b: list[float]
    steps: int = 0
    hold_steps: int = 0
    in_threshold: int = 0
    reached_step: int | None = None
    errors: list[float] = field(default_factory=list)
    stopped: str | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    @property
    def done(self) -> bool:
        return self.stopped is not None

    def next(self, policy_obs: np.ndarray, action_size: int) -> np.ndarray:
        try:
            action = self.source(policy_obs)
        except Exception as err:  # a broken policy ends the run, never the service
            self.finish(f"policy failed ({type(err).__name__}: {err})")
            return np.zeros(action_size, np.float32)
        if action is None:  # no action in time: hold, as the bridge does on the arm
            self.hold_steps += 1
            return np.zeros(action_size, np.float32)
        return np.asarray(action, np.float32).reshape(-1)

    def observe(self, error_m: float, succeeded: bool) -> None:
        """Account the step just taken: the task's error, its success test (held SETTLE_STEPS), the step budget."""
        self.steps += 1
        self.errors.append(error_m)
        self.in_threshold = self.in_threshold + 1 if succeeded else 0
        if self.in_threshold >= SETTLE_STEPS and self.reached_step is None:
            self.reached_step = self.steps
            if self.until_reached:
                self.finish("reached")
                return
        if self.steps >= self.max_steps:
            self.finish("max_steps")

    def finish(self, why: str) -> None:
        if self.stopped is None:
            self.stopped, self.ended = why, time.monotonic()
            self.source.close()

    def status(self) -> dict[str, Any]:
        errors = np.asarray(self.errors)
        every = max(1, int(np.ceil(len(errors) / TRACE_POINTS)))
        return {
            "kind": "policy", "run_id": self.run_id, "source": self.source.description, "done": self.done, "stopped": self.stopped,
            "steps": self.steps, "max_steps": self.max_steps, "target_b": self.target_b,
            "reached": self.reached_step is not None, "reached_step": self.reached_step,
            "threshold_m": self.threshold_m, "hold_steps": self.hold_steps,
            "initial_error_m": float(errors[0]) if len(errors) else None,
            "final_error_m": float(errors[-1]) if len(errors) else None,
            "min_error_m": float(errors.min()) if len(errors) else None,
            "error_trace_m": [round(float(e), 5) for e in errors[::every]], "trace_every_steps": every,
            "wall_s": round((self.ended or time.monotonic()) - self.started, 3),
        }
