"""Termination terms."""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.compat import SceneEntityCfg


def time_out(env: Any) -> torch.Tensor:
    return env.episode_length_buf >= env.max_episode_length


def joint_velocity_diverged(env: Any, max_velocity: float, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """A joint faster than any servo can move (or non-finite): the simulation has gone wrong."""
    vel = env.scene[asset_cfg.name].data.joint_vel.torch[:, asset_cfg.joint_ids]
    return ~(vel.abs() <= max_velocity).all(dim=1)  # NaN compares false: non-finite counts as diverged
