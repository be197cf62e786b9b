"""Fused forms of the reset event terms (``mdp.events``): the draws, then one kernel writing the drawn values.

A reset event's form draws its random numbers with the very calls the readable term makes (``events._uniform``,
``torch.randint``, in its order and shapes), so both paths consume the same stream and get the same numbers. Its
kernel writes them where the readable term's writers would, into the articulation's data buffers and the action
term's buffers, for the environments being reset (``ids``, the kernels' first argument). What went to the
articulation's buffers reaches the engine once for all terms (``Articulation.write_rows_to_sim``): one write per
field and one forward pass, where the readable terms write each field and run the engine's forward themselves.

A range that the readable path would refuse (a latency past the ring, a non-positive servo speed) gets no form, so
the readable term runs and refuses it as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from roarm_lab.embedded.managers.fused import view
from roarm_lab.mdp import events
from roarm_lab.mdp.fused.common import FusedTerm, Slot, joint_index, servo_term
from roarm_lab.utils.jit import compiled


@dataclass(frozen=True)
class FusedEvent:
    """A reset term's fused form: its draws for ``n`` environments, the kernel (``Slot`` s 0.. are the draws, in
    order), and the articulation fields it changes (``Articulation.write_rows_to_sim``) of the asset named."""

    draw: Callable[[int], tuple[torch.Tensor, ...]]
    term: FusedTerm
    writes: frozenset[str] = frozenset()
    asset: str | None = None


# ----------------------------------------------------------------------------- kernels: ids first, then the draws
@compiled
def _scaled_pair_kernel(ids, u_a, u_b, nominal_a, nominal_b, out_a, out_b, cols):  # pragma: no cover - compiled
    """``randomize_actuator_gains``: out[e, cols[j]] = nominal[e, j] * u[r, j] for kp and kv."""
    for r in range(ids.shape[0]):
        e = ids[r]
        for j in range(cols.shape[0]):
            out_a[e, cols[j]] = nominal_a[e, j] * u_a[r, j]
            out_b[e, cols[j]] = nominal_b[e, j] * u_b[r, j]


@compiled
def _joint_dynamics_kernel(ids, u_armature, u_friction, u_damping, armature_nominal, damping_nominal, armature,
                           friction, damping, cols):  # pragma: no cover - compiled
    """``randomize_joint_dynamics``: armature and passive damping scale their nominal values; friction is drawn."""
    for r in range(ids.shape[0]):
        e = ids[r]
        for j in range(cols.shape[0]):
            armature[e, cols[j]] = armature_nominal[e, j] * u_armature[r, j]
            friction[e, cols[j]] = u_friction[r, j]
            damping[e, cols[j]] = damping_nominal[e, j] * u_damping[r, j]


@compiled
def _rows_kernel(ids, u, out):  # pragma: no cover - compiled
    """out[e] = u[r]: a per-environment draw of every column (calibration, servo speed)."""
    for r in range(ids.shape[0]):
        for j in range(u.shape[1]):
            out[ids[r], j] = u[r, j]


@compiled
def _entries_kernel(ids, u, out):  # pragma: no cover - compiled
    """out[e] = u[r] for a per-environment value (latency)."""
    for r in range(ids.shape[0]):
        out[ids[r]] = u[r]


@compiled
def _joint_offset_kernel(ids, u_pos, u_vel, default_pos, default_vel, limits, joint_pos, joint_vel,
                         cols):  # pragma: no cover - compiled
    """``reset_joints_by_offset``: home plus the offset, clamped to the soft limits; the velocity likewise."""
    for r in range(ids.shape[0]):
        e = ids[r]
        for j in range(cols.shape[0]):
            c = cols[j]
            joint_pos[e, c] = min(max(default_pos[e, c] + u_pos[r, j], limits[e, c, 0]), limits[e, c, 1])
            joint_vel[e, c] = default_vel[e, c] + u_vel[r, j]


# ----------------------------------------------------------------------------- binders
def _uniform(lo_hi: tuple[float, float], width: int, device: Any) -> Callable[[int], torch.Tensor]:
    return lambda n: events._uniform(*lo_hi, (n, width), device)


def _gains(env: Any, term: Any, params: dict) -> FusedEvent:
    data = term._asset.data
    cols = np.asarray(term._joints, dtype=np.int64)
    kp, kv = _uniform(params["stiffness_distribution_params"], len(cols), env.device), \
        _uniform(params["damping_distribution_params"], len(cols), env.device)
    return FusedEvent(lambda n: (kp(n), kv(n)),
                      FusedTerm(_scaled_pair_kernel, (Slot(0), Slot(1), view(term._kp), view(term._kv),
                                                      view(data.joint_stiffness.torch), view(data.joint_damping.torch),
                                                      cols)),
                      frozenset({"gains"}), params["asset_cfg"].name)


def _joint_dynamics(env: Any, term: Any, params: dict) -> FusedEvent:
    data = term._asset.data
    cols = np.asarray(term._joints, dtype=np.int64)
    width = len(cols)
    armature = _uniform(params["armature_distribution_params"], width, env.device)
    friction = _uniform(params["friction_distribution_params"], width, env.device)
    damping = _uniform(params["damping_distribution_params"], width, env.device)
    return FusedEvent(lambda n: (armature(n), friction(n), damping(n)),  # the readable term's order
                      FusedTerm(_joint_dynamics_kernel,
                                (Slot(0), Slot(1), Slot(2), view(term._armature), view(term._damping),
                                 view(data.joint_armature.torch), view(data.joint_friction_coeff.torch),
                                 view(data.joint_viscous_friction_coeff.torch), cols)),
                      frozenset({"armature", "friction", "viscous_friction"}), params["asset_cfg"].name)


def _calibration(env: Any, term: Any, params: dict) -> FusedEvent:
    servo = servo_term(env, params["action_name"])
    draw = _uniform(params["offset_range"], servo.action_dim, env.device)
    return FusedEvent(lambda n: (draw(n),), FusedTerm(_rows_kernel, (Slot(0), view(servo.calibration_offset))))


def _latency(env: Any, term: Any, params: dict) -> FusedEvent | None:
    servo = servo_term(env, params["action_name"])
    lo, hi = params["latency_range"]
    if hi > servo.cfg.max_latency_steps:
        return None  # the readable term refuses it, naming the setting
    return FusedEvent(lambda n: (torch.randint(lo, hi + 1, (n,), device=env.device),),
                      FusedTerm(_entries_kernel, (Slot(0), view(servo._latency))))


def _servo_speed(env: Any, term: Any, params: dict) -> FusedEvent | None:
    servo = servo_term(env, params["action_name"])
    if params["speed_range"][0] <= 0:
        return None  # the readable term refuses it
    draw = _uniform(params["speed_range"], servo.action_dim, env.device)
    return FusedEvent(lambda n: (draw(n),), FusedTerm(_rows_kernel, (Slot(0), view(servo._speed))))


def _joint_offset(env: Any, term: Any, params: dict) -> FusedEvent:
    cfg = params["asset_cfg"]
    data = env.scene[cfg.name].data
    cols = joint_index(cfg.joint_ids, data.joint_pos.torch.shape[1])
    pos = _uniform(params["position_range"], len(cols), env.device)
    vel = _uniform(params["velocity_range"], len(cols), env.device)
    return FusedEvent(lambda n: (pos(n), vel(n)),
                      FusedTerm(_joint_offset_kernel,
                                (Slot(0), Slot(1), view(data.default_joint_pos.torch),
                                 view(data.default_joint_vel.torch), view(data.soft_joint_pos_limits.torch),
                                 view(data.joint_pos.torch), view(data.joint_vel.torch), cols)),
                      frozenset({"joint_pos", "joint_vel"}), cfg.name)


FORMS = {
    events.randomize_actuator_gains: _gains,
    events.randomize_joint_dynamics: _joint_dynamics,
    events.randomize_calibration_offset: _calibration,
    events.randomize_action_latency: _latency,
    events.randomize_servo_speed: _servo_speed,
    events.reset_joints_by_offset: _joint_offset,
}
