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

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from roarm_lab.embedded import backend_events
from roarm_lab.embedded.managers.fused import view
from roarm_lab.mdp import events
from roarm_lab.mdp.fused.common import ZERO, FusedTerm, Slot, joint_index, servo_term
from roarm_lab.utils.jit import kernel


@dataclass(frozen=True)
class FusedEvent:
    """A reset term's fused form: its draws for ``n`` environments, the kernel (``Slot`` s 0.. are the draws, in
    order), and what it changes, per asset, for the asset's ``write_rows_to_sim``: field -> the joints (None: all,
    or not per joint)."""

    draw: Callable[[int], tuple[torch.Tensor, ...]]
    term: FusedTerm
    writes: dict[str, dict[str, Any]] = field(default_factory=dict)
    after: Callable[[np.ndarray, tuple[torch.Tensor, ...]], None] | None = None
    """Run with the reset's ids and this term's draws after the kernels: an engine write no buffer holds."""


# ----------------------------------------------------------------------------- kernels: ids first, then the draws
@kernel
def _scaled_pair_kernel(ids, u_a, u_b, nominal_a, nominal_b, out_a, out_b, cols):  # pragma: no cover - compiled
    """``randomize_actuator_gains``: out[e, cols[j]] = nominal[e, j] * u[r, j] for kp and kv."""
    for r in range(ids.shape[0]):
        e = ids[r]
        for j in range(cols.shape[0]):
            out_a[e, cols[j]] = nominal_a[e, j] * u_a[r, j]
            out_b[e, cols[j]] = nominal_b[e, j] * u_b[r, j]


@kernel
def _joint_dynamics_kernel(ids, u_armature, u_friction, u_damping, armature_nominal, damping_nominal, armature,
                           friction, damping, cols):  # pragma: no cover - compiled
    """``randomize_joint_dynamics``: armature and passive damping scale their nominal values; friction is drawn."""
    for r in range(ids.shape[0]):
        e = ids[r]
        for j in range(cols.shape[0]):
            armature[e, cols[j]] = armature_nominal[e, j] * u_armature[r, j]
            friction[e, cols[j]] = u_friction[r, j]
            damping[e, cols[j]] = damping_nominal[e, j] * u_damping[r, j]


@kernel
def _rows_kernel(ids, u, out):  # pragma: no cover - compiled
    """out[e] = u[r]: a per-environment draw of every column (calibration, servo speed)."""
    for r in range(ids.shape[0]):
        for j in range(u.shape[1]):
            out[ids[r], j] = u[r, j]


@kernel
def _entries_kernel(ids, u, out):  # pragma: no cover - compiled
    """out[e] = u[r] for a per-environment value (latency)."""
    for r in range(ids.shape[0]):
        out[ids[r]] = u[r]


@kernel
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
                      {params["asset_cfg"].name: {"gains": cols}})


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
                      {params["asset_cfg"].name: {"armature": cols, "friction": cols, "viscous_friction": cols}})


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
                      {cfg.name: {"joint_pos": None, "joint_vel": None}})


@kernel
def _object_pose_kernel(ids, xyz, sin_half, cos_half, velocity, default_pose, default_velocity, origins, pose_out,
                        velocity_out, staged):  # pragma: no cover - compiled
    """``reset_root_state_uniform``: the default pose moved by the draws and turned about z (``_quat_mul_xyzw``
    with (0, 0, sin, cos), the sines the readable term's own), the default velocity plus its draws; staged."""
    for r in range(ids.shape[0]):
        e = ids[r]
        for j in range(3):
            pose_out[e, j] = default_pose[e, j] + (xyz[r, j] + origins[e, j])
        ax, ay, az, aw = default_pose[e, 3], default_pose[e, 4], default_pose[e, 5], default_pose[e, 6]
        bz, bw = sin_half[r], cos_half[r]
        pose_out[e, 3] = aw * ZERO + ax * bw + ay * bz - az * ZERO
        pose_out[e, 4] = aw * ZERO - ax * bz + ay * bw + az * ZERO
        pose_out[e, 5] = aw * bz + ax * ZERO - ay * ZERO + az * bw
        pose_out[e, 6] = aw * bw - ax * ZERO - ay * ZERO - az * bz
        for j in range(6):
            velocity_out[e, j] = default_velocity[e, j] + velocity[r, j]
        staged[e] = True


@kernel
def _scaled_mass_kernel(ids, u, mass_nominal, inertia_nominal, mass, inertia):  # pragma: no cover - compiled
    """``randomize_rigid_body_mass`` of a rigid object: mass and inertia times one factor per environment."""
    for r in range(ids.shape[0]):
        e = ids[r]
        mass[e, 0] = mass_nominal[e, 0] * u[r, 0]
        for k in range(9):
            inertia[e, 0, k] = inertia_nominal[e, 0, k] * u[r, 0]


@kernel
def _nothing_kernel(ids):  # pragma: no cover - compiled
    """A term whose draws go to the engine in ``after``."""


def _root_state(env: Any, term: Any, params: dict) -> FusedEvent | None:
    asset = env.scene[params["asset_cfg"].name]
    if not hasattr(asset, "pending_pose"):
        return None
    pose_range, velocity_range = params["pose_range"], params["velocity_range"]
    if (set(pose_range) - {"x", "y", "z", "yaw"}) | (set(velocity_range) - {"x", "y", "z", "roll", "pitch", "yaw"}):
        return None  # the readable term refuses them

    def draw(n: int) -> tuple[torch.Tensor, ...]:  # the readable term's draws, in its order
        def stacked(ranges: dict, keys: tuple[str, ...]) -> torch.Tensor:
            return torch.stack([events._uniform(*ranges.get(k, (0.0, 0.0)), (n,), env.device) for k in keys], dim=1)

        xyz = stacked(pose_range, ("x", "y", "z"))
        half_yaw = stacked(pose_range, ("yaw",))[:, 0] / 2
        velocity = stacked(velocity_range, ("x", "y", "z", "roll", "pitch", "yaw"))
        return xyz, half_yaw.sin(), half_yaw.cos(), velocity

    data = asset.data
    return FusedEvent(draw, FusedTerm(_object_pose_kernel,
                                      (Slot(0), Slot(1), Slot(2), Slot(3), view(data.default_root_pose.torch),
                                       view(data.default_root_vel.torch), view(env.scene.env_origins),
                                       view(asset.pending_pose), view(asset.pending_velocity),
                                       view(asset.pending_rows))),
                      {params["asset_cfg"].name: {"pose": None, "velocity": None}})


def _object_mass(env: Any, term: Any, params: dict) -> FusedEvent | None:
    asset = term._asset
    if not hasattr(asset, "pending_pose") or term._bodies != [0]:
        return None  # an articulation's links: randomized at start-up, readable
    draw = _uniform(params["mass_distribution_params"], 1, env.device)
    data = asset.data
    return FusedEvent(lambda n: (draw(n),),
                      FusedTerm(_scaled_mass_kernel, (Slot(0), view(term._mass), view(term._inertia),
                                                      view(data.body_mass.torch), view(data.body_inertia.torch))),
                      {params["asset_cfg"].name: {"mass": None}})


def _object_friction(env: Any, term: Any, params: dict) -> FusedEvent:
    asset = term._asset
    low_high = params["static_friction_range"]

    def after(rows: np.ndarray, draws: tuple[torch.Tensor, ...]) -> None:
        asset.backend.set_object_friction(asset.name, rows, draws[0].double().numpy())

    return FusedEvent(lambda n: (torch.empty(n).uniform_(*low_high),), FusedTerm(_nothing_kernel, ()), after=after)


FORMS = {
    events.randomize_actuator_gains: _gains,
    events.randomize_joint_dynamics: _joint_dynamics,
    events.randomize_calibration_offset: _calibration,
    events.randomize_action_latency: _latency,
    events.randomize_servo_speed: _servo_speed,
    events.reset_joints_by_offset: _joint_offset,
    events.reset_root_state_uniform: _root_state,
    events.randomize_rigid_body_mass: _object_mass,
    backend_events.randomize_rigid_body_material: _object_friction,
}
