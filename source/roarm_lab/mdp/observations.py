"""Observation terms: for the policy, only what the real arm's T:1051 feedback can supply at the control rate.

Joint readings come from the servo model (the action term), which knows each servo's calibration error;
the critic may read the simulator's truth. Asset data are read through Isaac Lab 3's ``.torch`` accessor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from roarm_lab.isaaclab_api import ManagerTermBase, SceneEntityCfg

ROBOT = SceneEntityCfg("robot")


def servo_joint_pos_rel(env: Any, action_name: str) -> torch.Tensor:
    """The servos' position readings of the action joints relative to home (rad)."""
    term = env.action_manager.get_term(action_name)
    return term.measured_joint_pos - term.default_joint_pos


class servo_joint_vel_finite_difference(ManagerTermBase):
    """Joint velocity as the real bridge computes it: (reading_t - reading_{t-1}) / control period.

    The arm reports positions only; no velocity register is streamed. Zero on the first step of an episode,
    as on the arm's first feedback frame. The previous reading advances once per control step
    (``env.common_step_counter``), so evaluating the group twice in a step (Isaac Lab's final observation
    before a reset, then the new one) gives the same velocity for the environments that did not reset.
    """

    def __init__(self, cfg: Any, env: Any):
        super().__init__(cfg, env)
        q = servo_joint_pos_rel(env, cfg.params["action_name"])
        # buffers updated in place, and the step they belong to as a host array: the fused form works on them too
        self._prev = q.clone()
        self._last = q.clone()
        self._step = np.array([env.common_step_counter], dtype=np.int64)
        self._fresh = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)

    def reset(self, env_ids: Any = None) -> None:
        self._fresh[slice(None) if env_ids is None else env_ids] = True

    def __call__(self, env: Any, action_name: str) -> torch.Tensor:
        q = servo_joint_pos_rel(env, action_name)
        if env.common_step_counter != self._step[0]:
            self._prev.copy_(self._last)
            self._step[0] = env.common_step_counter
        torch.where(self._fresh[:, None], q, self._prev, out=self._prev)
        self._fresh.zero_()
        self._last.copy_(q)
        return (q - self._prev) / env.step_dt


def joint_target_rel(env: Any, action_name: str) -> torch.Tensor:
    """The joint targets the policy has commanded, relative to home (rad): where the arm is being sent.

    The newest target, before the servos' latency and slew. The bridge knows it exactly (it is what it sent),
    and with it a policy need not infer from delayed motion how far its commands are ahead of the arm.
    """
    term = env.action_manager.get_term(action_name)
    return term.commanded_targets - term.default_joint_pos


def joint_pos_rel(env: Any, asset_cfg: SceneEntityCfg = ROBOT) -> torch.Tensor:
    """The true joint positions relative to home (rad): privileged, for the critic."""
    data = env.scene[asset_cfg.name].data
    return data.joint_pos.torch[:, asset_cfg.joint_ids] - data.default_joint_pos.torch[:, asset_cfg.joint_ids]


def generated_commands(env: Any, command_name: str) -> torch.Tensor:
    return env.command_manager.get_command(command_name)


def last_action(env: Any, action_name: str | None = None) -> torch.Tensor:
    if action_name is None:
        return env.action_manager.action
    return env.action_manager.get_term(action_name).raw_actions


def hand_position_b(asset: Any, body_idx: int) -> torch.Tensor:
    """The position of body ``body_idx`` in the robot's base frame (m): the one place this is computed."""
    return asset.data.body_pos_w.torch[:, body_idx] - asset.data.root_pos_w.torch


def ee_position_b(env: Any, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """Hand position in the base frame (m). The arm reports it too: T:1051 x, y, z (the firmware's FK)."""
    return hand_position_b(env.scene[asset_cfg.name], asset_cfg.body_ids[0])


def ee_position_error_b(env: Any, command_name: str, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """Target minus end-effector position in the base frame (m): the policy's and the critic's error vector."""
    return env.command_manager.get_command(command_name)[:, :3] - ee_position_b(env, asset_cfg)


def object_position_b(env: Any, object_cfg: SceneEntityCfg, robot_cfg: SceneEntityCfg = ROBOT) -> torch.Tensor:
    """An object's position in the robot's base frame (the base is fixed and not rotated: a translation)."""
    return (env.scene[object_cfg.name].data.root_pos_w.torch
            - env.scene[robot_cfg.name].data.root_pos_w.torch)


def object_ee_vector_b(env: Any, object_cfg: SceneEntityCfg, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """Object minus hand in the base frame: where to move the hand, given rather than left to subtract (as
    ``ee_position_error_b`` is for reach)."""
    robot = env.scene[asset_cfg.name]
    return env.scene[object_cfg.name].data.root_pos_w.torch - robot.data.body_pos_w.torch[:, asset_cfg.body_ids[0]]


def object_goal_vector_b(env: Any, command_name: str, object_cfg: SceneEntityCfg,
                         robot_cfg: SceneEntityCfg = ROBOT) -> torch.Tensor:
    """Goal minus object in the base frame."""
    return env.command_manager.get_command(command_name)[:, :3] - object_position_b(env, object_cfg, robot_cfg)


def object_height_above(env: Any, rest_height: float, object_cfg: SceneEntityCfg) -> torch.Tensor:
    """(N, 1) height of an object's centre above its resting height on the table (m)."""
    return env.scene[object_cfg.name].data.root_pos_w.torch[:, 2:3] - rest_height
