"""Reward terms: tracking, smoothness and goal. Weights live in the task config, not here."""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.compat import SceneEntityCfg
from roarm_lab.mdp.observations import ee_position_b, joint_pos_rel


def _position_error(env: Any, command_name: str, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    ee_b = ee_position_b(env, asset_cfg)
    return torch.linalg.vector_norm(env.command_manager.get_command(command_name)[:, :3] - ee_b, dim=-1)


def position_command_error(env: Any, command_name: str, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """Distance (m) between the end effector and its target."""
    return _position_error(env, command_name, asset_cfg)


def position_command_error_tanh(env: Any, std: float, command_name: str, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """Kernel ``1 - tanh(d / std)``: steep near the target when ``std`` is small."""
    return 1.0 - torch.tanh(_position_error(env, command_name, asset_cfg) / std)


def position_goal_bonus(env: Any, tolerance: float, command_name: str, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """1 while the end effector is within ``tolerance`` (m) of the target."""
    return (_position_error(env, command_name, asset_cfg) < tolerance).float()


def action_rate_l2(env: Any) -> torch.Tensor:
    return torch.sum(torch.square(env.action_manager.action - env.action_manager.prev_action), dim=1)


def joint_vel_l2(env: Any, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    return torch.sum(torch.square(env.scene[asset_cfg.name].data.joint_vel.torch[:, asset_cfg.joint_ids]), dim=1)


def joint_deviation_l1(env: Any, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """Sum of |q - home| over the chosen joints: keeps joints the target does not need (roll) at home."""
    return torch.sum(torch.abs(joint_pos_rel(env, asset_cfg)), dim=1)
