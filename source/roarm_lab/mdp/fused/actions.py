"""Fused forms of the servo action terms (``mdp.actions``): the policy's action to delayed, slewed servo targets.

A kernel per method of the term: ``process`` (the action convention of ``policy.targets``: the desired target, the
safe box, the step limit; then the latency ring) once per policy step, ``apply`` (the servo's setpoint slewing
toward the delayed target, its deadband, the calibration error) before the engine steps, and ``reset``.
Both work on the term's own buffers, in place, so the readable methods and these can take turns on one term.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from roarm_lab.embedded.managers.fused import view
from roarm_lab.mdp import actions
from roarm_lab.mdp.fused.common import FusedTerm
from roarm_lab.utils.jit import kernel

RELATIVE, ABSOLUTE, BINARY = 0, 1, 2


@kernel
def process_kernel(action, raw, history, head, offset, scale, lower, upper, latency, processed, open_pos, close_pos,
                   start, mode, max_step):  # pragma: no cover - compiled
    """``ServoJointPositionAction.process_actions`` for the term's columns ``start..`` of the action; ``mode``
    RELATIVE, ABSOLUTE or BINARY (the gripper's: close where the action is negative); ``max_step`` < 0: none."""
    slots = history.shape[1]
    h = head[0]
    nh = (h + 1) % slots
    for e in range(action.shape[0]):
        for j in range(raw.shape[1]):
            raw[e, j] = action[e, start + j]
        for j in range(offset.shape[1]):
            previous = history[e, h, j]
            if mode == BINARY:
                desired = close_pos[j] if action[e, start] < 0 else open_pos[j]
            else:
                desired = (previous if mode == RELATIVE else offset[e, j]) + scale[j] * action[e, start + j]
            target = min(max(desired, lower[j]), upper[j])
            if max_step >= 0:
                inside = min(max(previous, lower[j]), upper[j])
                target = inside + min(max(target - inside, -max_step), max_step)
            history[e, nh, j] = target
        delayed = (nh - latency[e]) % slots
        for j in range(offset.shape[1]):
            processed[e, j] = history[e, delayed, j]
    head[0] = nh


@kernel
def apply_kernel(targets, processed, setpoint, speed, calibration, cols, deadband, dt):  # pragma: no cover - compiled
    """``ServoJointPositionAction.apply_actions``: the setpoint moves at most ``speed * dt`` toward the delayed
    target, not at all inside the deadband; the drive's target is the setpoint plus the calibration error."""
    for e in range(processed.shape[0]):
        for j in range(cols.shape[0]):
            diff = processed[e, j] - setpoint[e, j]
            reach = speed[e, j] * dt
            if not abs(diff) <= deadband:
                setpoint[e, j] = setpoint[e, j] + min(max(diff, -reach), reach)
            targets[e, cols[j]] = setpoint[e, j] + calibration[e, j]


@kernel
def reset_kernel(ids, raw, history, processed, setpoint, joint_pos, calibration, offset, cols,
                 relative):  # pragma: no cover - compiled
    """``ServoJointPositionAction.reset``: no action, and every target (the ring, the delayed one, the setpoint)
    where the servos read the arm (relative mode) or at the offset (absolute)."""
    for r in range(ids.shape[0]):
        e = ids[r]
        for j in range(raw.shape[1]):
            raw[e, j] = 0.0
        for j in range(cols.shape[0]):
            start = joint_pos[e, cols[j]] - calibration[e, j] if relative else offset[e, j]
            for s in range(history.shape[1]):
                history[e, s, j] = start
            processed[e, j] = start
            setpoint[e, j] = start


def bind_servo(env: Any, term: Any, start: int) -> tuple[FusedTerm, FusedTerm, FusedTerm] | None:
    """The term's (process, apply, reset) forms: the first over the action manager's whole action (its columns
    from ``start``), the second over the articulation's joint targets, the third over the reset's environment ids;
    None for a term of another kind."""
    if type(term) not in (actions.ServoJointPositionAction, actions.BinaryServoGripperAction):
        return None
    cfg = term.cfg
    binary = isinstance(term, actions.BinaryServoGripperAction)
    mode = BINARY if binary else RELATIVE if cfg.mode == "relative" else ABSOLUTE
    width = term.action_dim if binary else len(term.joint_ids)
    lower, upper = (view(bound.contiguous()) for bound in term.limits)
    open_pos = view(term._open) if binary else np.zeros(width, dtype=np.float32)
    close_pos = view(term._close) if binary else np.zeros(width, dtype=np.float32)
    process = FusedTerm(process_kernel,
                        (view(term.raw_actions), view(term._history), term._head_slot, view(term._offset),
                         view(term.scale), lower, upper, view(term._latency), view(term.processed_actions),
                         open_pos, close_pos),
                        (start, mode), (-1.0 if cfg.max_step is None else cfg.max_step,))
    apply = FusedTerm(apply_kernel,
                      (view(term.processed_actions), view(term._setpoint), view(term._speed),
                       view(term.calibration_offset), np.asarray(term.joint_ids, dtype=np.int64)),
                      (), (cfg.servo_deadband, term._apply_dt))
    joint_pos = env.scene[cfg.asset_name].data.joint_pos.torch
    reset = FusedTerm(reset_kernel,
                      (view(term.raw_actions), view(term._history), view(term.processed_actions),
                       view(term._setpoint), view(joint_pos), view(term.calibration_offset), view(term._offset),
                       np.asarray(term.joint_ids, dtype=np.int64)), (int(cfg.mode == "relative"),))
    return process, apply, reset
