"""Event terms: resets and domain randomization. Each writes through one articulation method per effect."""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.compat import SceneEntityCfg


def _uniform(lo: float, hi: float, shape: tuple[int, ...], device: Any) -> torch.Tensor:
    return torch.empty(shape, device=device).uniform_(lo, hi)


def _ids(asset_ids: Any, count: int) -> list[int]:
    return list(range(count)) if isinstance(asset_ids, slice) else list(asset_ids)


def reset_joints_by_offset(env: Any, env_ids: torch.Tensor, position_range: tuple[float, float],
                           velocity_range: tuple[float, float], asset_cfg: SceneEntityCfg) -> None:
    """Home pose plus a uniform offset, clamped to the joint limits.

    Offsets, not Isaac Lab's scale: this arm's home has zeros, which a scale would never move.
    """
    asset = env.scene[asset_cfg.name]
    joints = _ids(asset_cfg.joint_ids, asset.num_joints)
    n = (len(env_ids), len(joints))
    pos = asset.data.default_joint_pos[env_ids][:, joints] + _uniform(*position_range, n, env.device)
    limits = asset.data.soft_joint_pos_limits[env_ids][:, joints]
    pos = pos.clamp(limits[..., 0], limits[..., 1])
    vel = asset.data.default_joint_vel[env_ids][:, joints] + _uniform(*velocity_range, n, env.device)
    asset.write_joint_state_to_sim(pos, vel, joint_ids=joints, env_ids=env_ids)


def randomize_rigid_body_mass(env: Any, env_ids: torch.Tensor, asset_cfg: SceneEntityCfg,
                              mass_distribution_params: tuple[float, float]) -> None:
    """Scale link masses (inertias follow) by a uniform factor per link and environment."""
    asset = env.scene[asset_cfg.name]
    bodies = _ids(asset_cfg.body_ids, asset.data.default_mass.shape[1])
    scale = _uniform(*mass_distribution_params, (len(env_ids), len(bodies)), env.device)
    asset.set_masses(asset.data.default_mass[env_ids][:, bodies] * scale, bodies, env_ids)


def randomize_actuator_gains(env: Any, env_ids: torch.Tensor, asset_cfg: SceneEntityCfg,
                             stiffness_distribution_params: tuple[float, float],
                             damping_distribution_params: tuple[float, float]) -> None:
    """Scale each servo's kp and kv."""
    asset = env.scene[asset_cfg.name]
    joints = _ids(asset_cfg.joint_ids, asset.num_joints)
    n = (len(env_ids), len(joints))
    kp = asset.data.default_joint_stiffness[env_ids][:, joints] * _uniform(*stiffness_distribution_params, n, env.device)
    kv = asset.data.default_joint_damping[env_ids][:, joints] * _uniform(*damping_distribution_params, n, env.device)
    asset.write_joint_stiffness_and_damping_to_sim(kp, kv, joints, env_ids)


def randomize_joint_dynamics(env: Any, env_ids: torch.Tensor, asset_cfg: SceneEntityCfg,
                               friction_distribution_params: tuple[float, float],
                               armature_distribution_params: tuple[float, float],
                               damping_distribution_params: tuple[float, float]) -> None:
    """Coulomb friction (absolute, N m), armature and passive damping (scales of the nominal values)."""
    asset = env.scene[asset_cfg.name]
    joints = _ids(asset_cfg.joint_ids, asset.num_joints)
    n = (len(env_ids), len(joints))
    data = asset.data
    asset.write_joint_friction_coefficient_to_sim(_uniform(*friction_distribution_params, n, env.device), joints, env_ids)
    asset.write_joint_armature_to_sim(
        data.default_joint_armature[env_ids][:, joints] * _uniform(*armature_distribution_params, n, env.device),
        joints, env_ids)
    asset.write_joint_viscous_friction_coefficient_to_sim(
        data.default_joint_viscous_friction_coeff[env_ids][:, joints]
        * _uniform(*damping_distribution_params, n, env.device), joints, env_ids)


def randomize_calibration_offset(env: Any, env_ids: torch.Tensor, asset_cfg: SceneEntityCfg,
                                 offset_range: tuple[float, float]) -> None:
    """A per-joint servo zero error, as left by an imperfect calibration of the real arm."""
    asset = env.scene[asset_cfg.name]
    joints = _ids(asset_cfg.joint_ids, asset.num_joints)
    offset = _uniform(*offset_range, (len(env_ids), len(joints)), env.device)
    asset.write_joint_calibration_offset_to_sim(offset, joints, env_ids)


def randomize_action_latency(env: Any, env_ids: torch.Tensor, action_name: str,
                             latency_range: tuple[int, int]) -> None:
    """Delay the action term's targets by a whole number of control steps (inclusive range)."""
    term = env.action_manager.get_term(action_name)
    lo, hi = latency_range
    term.set_latency(torch.randint(lo, hi + 1, (len(env_ids),), device=env.device), env_ids)


def randomize_servo_speed(env: Any, env_ids: torch.Tensor, action_name: str,
                          speed_range: tuple[float, float]) -> None:
    """Draw each servo's setpoint speed (rad/s) per joint and environment: arms and firmwares differ."""
    term = env.action_manager.get_term(action_name)
    term.set_servo_speed(_uniform(*speed_range, (len(env_ids), term.action_dim), env.device), env_ids)
