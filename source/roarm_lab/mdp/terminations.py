"""Termination terms."""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.isaaclab_api import SceneEntityCfg


def time_out(env: Any) -> torch.Tensor:
    return env.episode_length_buf >= env.max_episode_length


def joint_velocity_diverged(env: Any, max_velocity: float, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """A joint faster than any servo can move (or non-finite): the simulation has gone wrong."""
    vel = env.scene[asset_cfg.name].data.joint_vel.torch[:, asset_cfg.joint_ids]
    return ~(vel.abs() <= max_velocity).all(dim=1)  # NaN compares false: non-finite counts as diverged


def root_height_below_minimum(env: Any, minimum_height: float, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """An asset's root below a height (world z): an object that fell off the table."""
    return env.scene[asset_cfg.name].data.root_pos_w.torch[:, 2] < minimum_height


def object_off_table(env: Any, half_extent: tuple[float, float], asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """An object whose centre left the table top's rectangle (x, y half sizes around its environment's origin), or is
    not finite."""
    pos = env.scene[asset_cfg.name].data.root_pos_w.torch - env.scene.env_origins
    inside = (pos[:, 0].abs() <= half_extent[0]) & (pos[:, 1].abs() <= half_extent[1]) & pos[:, 2].isfinite()
    return ~inside
