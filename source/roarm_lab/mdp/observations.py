"""Observation terms: only what the real arm's T:1051 feedback can supply at the control rate."""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.compat import ManagerTermBase, SceneEntityCfg

ROBOT = SceneEntityCfg("robot")


def joint_pos_rel(env: Any, asset_cfg: SceneEntityCfg = ROBOT) -> torch.Tensor:
    """Joint positions relative to the home pose (rad)."""
    data = env.scene[asset_cfg.name].data
    return data.joint_pos[:, asset_cfg.joint_ids] - data.default_joint_pos[:, asset_cfg.joint_ids]


class joint_vel_finite_difference(ManagerTermBase):
    """Joint velocity as the real bridge can compute it: (q_t - q_{t-1}) / control period.

    The arm reports positions only; a servo velocity register is not streamed. Zero on the first step
    of an episode, as on the arm's first feedback frame.
    """

    def __init__(self, cfg: Any, env: Any):
        super().__init__(cfg, env)
        asset_cfg = cfg.params.get("asset_cfg", ROBOT)
        self._prev = env.scene[asset_cfg.name].data.joint_pos[:, asset_cfg.joint_ids].clone()
        self._fresh = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)

    def reset(self, env_ids: Any = None) -> None:
        self._fresh[slice(None) if env_ids is None else env_ids] = True

    def __call__(self, env: Any, asset_cfg: SceneEntityCfg = ROBOT) -> torch.Tensor:
        q = env.scene[asset_cfg.name].data.joint_pos[:, asset_cfg.joint_ids]
        self._prev = torch.where(self._fresh[:, None], q, self._prev)
        vel = (q - self._prev) / env.step_dt
        self._prev = q.clone()
        self._fresh.zero_()
        return vel


def joint_target_rel(env: Any, action_name: str, asset_cfg: SceneEntityCfg = ROBOT) -> torch.Tensor:
    """The joint targets the policy has commanded, relative to home (rad): where the arm is being sent.

    The newest target, before the servos' latency and slew. The bridge knows it exactly (it is what it sent),
    and with it a policy need not infer from delayed motion how far its commands are ahead of the arm.
    """
    data = env.scene[asset_cfg.name].data
    return env.action_manager.get_term(action_name).commanded_targets - data.default_joint_pos[:, asset_cfg.joint_ids]


def generated_commands(env: Any, command_name: str) -> torch.Tensor:
    return env.command_manager.get_command(command_name)


def last_action(env: Any, action_name: str | None = None) -> torch.Tensor:
    if action_name is None:
        return env.action_manager.action
    return env.action_manager.get_term(action_name).raw_actions


def ee_position_b(env: Any, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """Hand position in the base frame (m). The arm reports it too: T:1051 x, y, z (the firmware's FK)."""
    asset = env.scene[asset_cfg.name]
    return asset.data.body_pos_w[:, asset_cfg.body_ids[0]] - asset.data.root_pos_w


def ee_position_error_b(env: Any, command_name: str, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """Target minus end-effector position in the base frame (privileged: for the critic only)."""
    return env.command_manager.get_command(command_name)[:, :3] - ee_position_b(env, asset_cfg)
