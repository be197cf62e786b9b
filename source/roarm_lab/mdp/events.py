"""Event terms: resets and domain randomization, through Isaac Lab 3's writers on either runtime.

Randomizing terms that scale a nominal value are classes: they read the nominal values (what the USD /
MuJoCo model and the actuator config put in) once when built, so repeated resets scale the nominal value,
not the last draw. ``env_ids`` may be a tensor, a slice or None (Isaac Lab passes None at start-up).
"""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.isaaclab_api import ManagerTermBase, SceneEntityCfg


RANDOMIZATION_PREFIX = "randomize_"
"""Event terms whose function is named ``randomize_*`` are domain randomization (nominal evaluation drops them)."""


def randomization_terms(events_cfg: Any) -> list[str]:
    """Names of the event terms of a config that randomize the simulated arm, read from the config itself."""
    if events_cfg is None:
        return []
    return [name for name, term in vars(events_cfg).items()
            if term is not None and getattr(term, "func", None) is not None
            and getattr(term.func, "__name__", "").startswith(RANDOMIZATION_PREFIX)]


def env_index(env: Any, env_ids: Any) -> torch.Tensor:
    """Isaac Lab's env_ids forms (None, a slice, a tensor) as an index tensor."""
    if env_ids is None or isinstance(env_ids, slice):
        return torch.arange(env.num_envs, device=env.device)[slice(None) if env_ids is None else env_ids]
    return torch.as_tensor(env_ids, device=env.device).long()


def _ids(asset_ids: Any, count: int) -> list[int]:
    """A resolved ``joint_ids`` / ``body_ids`` (a list or a slice) as a list of indices."""
    return list(range(count))[asset_ids] if isinstance(asset_ids, slice) else list(asset_ids)


def _uniform(lo: float, hi: float, shape: tuple[int, ...], device: Any) -> torch.Tensor:
    return torch.empty(shape, device=device).uniform_(lo, hi)


def reset_joints_by_offset(env: Any, env_ids: Any, position_range: tuple[float, float],
                           velocity_range: tuple[float, float], asset_cfg: SceneEntityCfg) -> None:
    """Home pose plus a uniform offset, clamped to the joint limits.

    Offsets, not Isaac Lab's scale: this arm's home has zeros, which a scale would never move.
    """
    asset = env.scene[asset_cfg.name]
    ids = env_index(env, env_ids)
    joints = _ids(asset_cfg.joint_ids, asset.num_joints)
    data = asset.data
    rows, cols = ids[:, None], torch.as_tensor(joints, device=env.device)
    pos = data.default_joint_pos.torch[rows, cols] + _uniform(*position_range, (len(ids), len(joints)), env.device)
    limits = data.soft_joint_pos_limits.torch[rows, cols]
    pos = pos.clamp(limits[..., 0], limits[..., 1])
    vel = data.default_joint_vel.torch[rows, cols] + _uniform(*velocity_range, (len(ids), len(joints)), env.device)
    asset.write_joint_position_to_sim_index(position=pos, joint_ids=joints, env_ids=ids)
    asset.write_joint_velocity_to_sim_index(velocity=vel, joint_ids=joints, env_ids=ids)


class _ScaledNominal(ManagerTermBase):
    """A term that scales nominal per-joint or per-body values read from the asset when the term is built."""

    def __init__(self, cfg: Any, env: Any):
        super().__init__(cfg, env)
        asset_cfg = cfg.params["asset_cfg"]
        self._asset = env.scene[asset_cfg.name]

    def _nominal(self, field: str, ids: Any, count: int) -> torch.Tensor:
        return getattr(self._asset.data, field).torch[:, _ids(ids, count)].clone()


class randomize_rigid_body_mass(_ScaledNominal):
    """Scale link masses by a uniform factor per link and environment; the inertias scale with them.

    Isaac Lab 3's ``set_masses_index`` leaves the inertia alone (a heavier link would keep a light link's
    inertia), so the same factor is written with ``set_inertias_index``: the radius of gyration is kept.
    """

    def __init__(self, cfg: Any, env: Any):
        super().__init__(cfg, env)
        bodies = cfg.params["asset_cfg"].body_ids
        self._bodies = _ids(bodies, self._asset.num_bodies)
        self._mass = self._nominal("body_mass", bodies, self._asset.num_bodies)
        self._inertia = self._nominal("body_inertia", bodies, self._asset.num_bodies)

    def __call__(self, env: Any, env_ids: Any, asset_cfg: SceneEntityCfg,
                 mass_distribution_params: tuple[float, float]) -> None:
        ids = env_index(env, env_ids)
        scale = _uniform(*mass_distribution_params, (len(ids), len(self._bodies)), env.device)
        self._asset.set_masses_index(masses=self._mass[ids] * scale, body_ids=self._bodies, env_ids=ids)
        self._asset.set_inertias_index(inertias=self._inertia[ids] * scale[..., None], body_ids=self._bodies,
                                       env_ids=ids)


class randomize_actuator_gains(_ScaledNominal):
    """Scale each servo's kp and kv (the implicit drive's stiffness and damping)."""

    def __init__(self, cfg: Any, env: Any):
        super().__init__(cfg, env)
        joints = cfg.params["asset_cfg"].joint_ids
        self._joints = _ids(joints, self._asset.num_joints)
        self._kp = self._nominal("joint_stiffness", joints, self._asset.num_joints)
        self._kv = self._nominal("joint_damping", joints, self._asset.num_joints)

    def __call__(self, env: Any, env_ids: Any, asset_cfg: SceneEntityCfg,
                 stiffness_distribution_params: tuple[float, float],
                 damping_distribution_params: tuple[float, float]) -> None:
        ids = env_index(env, env_ids)
        n = (len(ids), len(self._joints))
        self._asset.write_joint_stiffness_to_sim_index(
            stiffness=self._kp[ids] * _uniform(*stiffness_distribution_params, n, env.device),
            joint_ids=self._joints, env_ids=ids)
        self._asset.write_joint_damping_to_sim_index(
            damping=self._kv[ids] * _uniform(*damping_distribution_params, n, env.device),
            joint_ids=self._joints, env_ids=ids)


class randomize_joint_dynamics(_ScaledNominal):
    """Coulomb friction (absolute, N m), armature and passive damping (scales of the nominal values)."""

    def __init__(self, cfg: Any, env: Any):
        super().__init__(cfg, env)
        joints = cfg.params["asset_cfg"].joint_ids
        self._joints = _ids(joints, self._asset.num_joints)
        self._armature = self._nominal("joint_armature", joints, self._asset.num_joints)
        self._damping = self._nominal("joint_viscous_friction_coeff", joints, self._asset.num_joints)

    def __call__(self, env: Any, env_ids: Any, asset_cfg: SceneEntityCfg,
                 friction_distribution_params: tuple[float, float],
                 armature_distribution_params: tuple[float, float],
                 damping_distribution_params: tuple[float, float]) -> None:
        ids = env_index(env, env_ids)
        n = (len(ids), len(self._joints))
        self._asset.write_joint_armature_to_sim_index(
            armature=self._armature[ids] * _uniform(*armature_distribution_params, n, env.device),
            joint_ids=self._joints, env_ids=ids)
        self._asset.write_joint_friction_coefficient_to_sim_index(
            joint_friction_coeff=_uniform(*friction_distribution_params, n, env.device),
            joint_viscous_friction_coeff=self._damping[ids] * _uniform(*damping_distribution_params, n, env.device),
            joint_ids=self._joints, env_ids=ids)


def randomize_calibration_offset(env: Any, env_ids: Any, action_name: str, offset_range: tuple[float, float]) -> None:
    """A per-joint servo zero error, as left by an imperfect calibration of the real arm (see the servo model)."""
    term = env.action_manager.get_term(action_name)
    ids = env_index(env, env_ids)
    term.set_calibration_offset(_uniform(*offset_range, (len(ids), term.action_dim), env.device), ids)


def randomize_action_latency(env: Any, env_ids: Any, action_name: str, latency_range: tuple[int, int]) -> None:
    """Delay the action term's targets by a whole number of control steps (inclusive range)."""
    term = env.action_manager.get_term(action_name)
    ids = env_index(env, env_ids)
    lo, hi = latency_range
    term.set_latency(torch.randint(lo, hi + 1, (len(ids),), device=env.device), ids)


def randomize_servo_speed(env: Any, env_ids: Any, action_name: str, speed_range: tuple[float, float]) -> None:
    """Draw each servo's setpoint speed (rad/s) per joint and environment: arms and firmwares differ."""
    term = env.action_manager.get_term(action_name)
    ids = env_index(env, env_ids)
    term.set_servo_speed(_uniform(*speed_range, (len(ids), term.action_dim), env.device), ids)


def reset_root_state_uniform(env: Any, env_ids: Any, pose_range: dict[str, tuple[float, float]],
                             velocity_range: dict[str, tuple[float, float]], asset_cfg: SceneEntityCfg) -> None:
    """Isaac Lab's term: the default root pose plus uniform offsets (``x y z`` m; ``yaw`` rad about z, the only
    rotation this task's objects take) and a uniform velocity (``x y z roll pitch yaw``), written to the sim."""
    unknown = (set(pose_range) - {"x", "y", "z", "yaw"}) | (set(velocity_range) - {"x", "y", "z", "roll", "pitch", "yaw"})
    if unknown:
        raise ValueError(f"reset_root_state_uniform: unknown range keys {sorted(unknown)}; pose takes x y z yaw")
    asset = env.scene[asset_cfg.name]
    ids = env_index(env, env_ids)
    n = len(ids)

    def draw(ranges: dict[str, tuple[float, float]], keys: tuple[str, ...]) -> torch.Tensor:
        return torch.stack([_uniform(*ranges.get(k, (0.0, 0.0)), (n,), env.device) for k in keys], dim=1)

    pose = asset.data.default_root_pose.torch[ids].clone()
    pose[:, :3] += draw(pose_range, ("x", "y", "z")) + env.scene.env_origins[ids]
    half_yaw = draw(pose_range, ("yaw",))[:, 0] / 2
    turn = torch.stack([torch.zeros_like(half_yaw), torch.zeros_like(half_yaw), half_yaw.sin(), half_yaw.cos()], 1)
    pose[:, 3:] = _quat_mul_xyzw(pose[:, 3:], turn)
    velocity = asset.data.default_root_vel.torch[ids] + draw(velocity_range, ("x", "y", "z", "roll", "pitch", "yaw"))
    asset.write_root_pose_to_sim_index(root_pose=pose, env_ids=ids)
    asset.write_root_velocity_to_sim_index(root_velocity=velocity, env_ids=ids)


def _quat_mul_xyzw(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ax, ay, az, aw = a.unbind(-1)
    bx, by, bz, bw = b.unbind(-1)
    return torch.stack([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz], dim=-1)
