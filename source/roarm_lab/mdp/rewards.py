"""Reward terms: tracking, smoothness, goal and posture. Weights live in the task config, not here."""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.assets.joint_table import ARM_JOINTS
from roarm_lab.isaaclab_api import ManagerTermBase, SceneEntityCfg
from roarm_lab.mdp.commands import workspace_joint_box
from roarm_lab.mdp.observations import ROBOT, ee_position_b, joint_pos_rel, object_ee_vector_b, object_goal_vector_b


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


def joint_near_limits_l1(env: Any, margin: float, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """Sum over the chosen joints of how deep (rad) each lies inside a band of ``margin`` at either end of its range.

    Relative targets accumulate, and the safe box clamps them at the limits, where action noise cannot move a
    joint: a posture that rides its limits is a stable place for a noisy policy to settle. Lift's policies curled
    there with the cube in the jaws (elbow at 2.73 rad, wrist at -1.0, the base's target 1.3 rad past the arm),
    lifting the cube 1 cm by the wrist's tilt and no further (docs/tasks.md). Isaac Lab's ``joint_pos_limits``
    pays outside the soft limits, which the safe box never lets a joint reach here; this pays the approach."""
    data = env.scene[asset_cfg.name].data
    q = data.joint_pos.torch[:, asset_cfg.joint_ids]
    limits = data.soft_joint_pos_limits.torch[:, asset_cfg.joint_ids]
    return _outside_box_l1(q, limits[..., 0] + margin, limits[..., 1] - margin)


def _outside_box_l1(q: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis of how far (rad) each joint lies outside [low, high]."""
    return torch.sum(torch.abs(q - torch.clamp(q, low, high)), dim=-1)


class joint_outside_workspace_box_l1(ManagerTermBase):
    """Sum over the chosen joints of how far (rad) each lies outside the joint box the command draws its
    targets from (``ReachableTargetCommandCfg.joint_box``, read, not restated).

    Every target is reached by some joint vector inside that box, so a policy that reaches it there pays
    nothing. What it pays for is riding a joint's hard limit (the wrist at -1.0 rad, the elbow at 2.73 rad)
    with the roll turned to make up the rest: the posture the held-out misses stall in, 2 to 3 cm short
    (docs/benchmarks_history.md).
    """

    def __init__(self, cfg: Any, env: Any):
        super().__init__(cfg, env)
        asset_cfg: SceneEntityCfg = cfg.params["asset_cfg"]
        command = env.command_manager.get_term(cfg.params["command_name"])
        joint_names = env.scene[asset_cfg.name].joint_names
        names = [joint_names[i] for i in _indices(asset_cfg.joint_ids, len(joint_names))]
        arm = [j.name for j in ARM_JOINTS]
        unknown = [n for n in names if n not in arm]
        if unknown:
            raise ValueError(f"joint_outside_workspace_box_l1: {unknown} are not arm joints of the workspace box "
                             f"(arm joints: {arm})")
        lows, highs = workspace_joint_box(command.cfg.joint_box)
        order = [arm.index(n) for n in names]
        self._low = torch.tensor(lows[order], dtype=torch.float32, device=env.device)
        self._high = torch.tensor(highs[order], dtype=torch.float32, device=env.device)

    def __call__(self, env: Any, command_name: str, asset_cfg: SceneEntityCfg) -> torch.Tensor:
        q = env.scene[asset_cfg.name].data.joint_pos.torch[:, asset_cfg.joint_ids]
        return _outside_box_l1(q, self._low, self._high)


def _indices(ids: Any, count: int) -> list[int]:
    """Joint indices of a resolved ``SceneEntityCfg.joint_ids``: a list, or a slice (a contiguous run, all joints)."""
    return list(range(count)[ids]) if isinstance(ids, slice) else [int(i) for i in ids]


# ----------------------------------------------------------------------------- objects (Isaac Lab's lift terms)
def object_ee_distance(env: Any, std: float, object_cfg: SceneEntityCfg, ee_cfg: SceneEntityCfg) -> torch.Tensor:
    """Reaching the object: 1 - tanh(distance / std) between the hand's frame ``ee_cfg`` and the object's centre."""
    return 1.0 - torch.tanh(_hand_distance(env, object_cfg, ee_cfg) / std)


def _hand_distance(env: Any, object_cfg: SceneEntityCfg, ee_cfg: SceneEntityCfg) -> torch.Tensor:
    return torch.linalg.norm(object_ee_vector_b(env, object_cfg, ee_cfg), dim=1)


def _held_up(env: Any, minimal_height: float, object_cfg: SceneEntityCfg, ee_cfg: SceneEntityCfg | None,
             max_ee_distance: float) -> torch.Tensor:
    """1 where the object is above ``minimal_height`` and, with ``ee_cfg``, within ``max_ee_distance`` of the hand."""
    up = env.scene[object_cfg.name].data.root_pos_w.torch[:, 2] > minimal_height
    if ee_cfg is not None:
        up &= _hand_distance(env, object_cfg, ee_cfg) < max_ee_distance
    return up.float()


def _height_above_goal(env: Any, command_name: str, object_cfg: SceneEntityCfg,
                       robot_cfg: SceneEntityCfg) -> torch.Tensor:
    """How far (m) the object's centre is above the goal command's height; negative below it."""
    return -object_goal_vector_b(env, command_name, object_cfg, robot_cfg)[:, 2]


def object_is_lifted(env: Any, minimal_height: float, object_cfg: SceneEntityCfg,
                     ee_cfg: SceneEntityCfg | None = None, max_ee_distance: float = 0.04,
                     command_name: str | None = None, max_above_goal: float = 0.03,
                     robot_cfg: SceneEntityCfg = ROBOT) -> torch.Tensor:
    """1 where the object's centre is above ``minimal_height`` (world z, the table top at 0). With ``ee_cfg``, only
    while the object is in the hand: a 40 g cube knocked into the air would otherwise pay as if lifted, and a
    policy learns to fling it (the first lift runs did: most episodes ended with the cube off the table).

    With ``command_name``, only while the object is also no more than ``max_above_goal`` (m) above that goal
    command's height. Uncapped, a lift pays the same at any height, and a small arm under relative-action noise
    finds holding the cube at the top of its travel, its joints against their limits where noise cannot move
    them, a stable optimum that never reaches the goal (docs/tasks.md, runs A, D, E)."""
    lifted = _held_up(env, minimal_height, object_cfg, ee_cfg, max_ee_distance)
    if command_name is not None:
        lifted = lifted * (_height_above_goal(env, command_name, object_cfg, robot_cfg) <= max_above_goal).float()
    return lifted


def object_goal_distance(env: Any, std: float, minimal_height: float, command_name: str,
                         object_cfg: SceneEntityCfg, robot_cfg: SceneEntityCfg,
                         ee_cfg: SceneEntityCfg | None = None, max_ee_distance: float = 0.04) -> torch.Tensor:
    """Goal tracking, 1 - tanh(distance / std), paid only while the object is lifted (Isaac Lab's gate) and, with
    ``ee_cfg``, held."""
    distance = torch.linalg.norm(object_goal_vector_b(env, command_name, object_cfg, robot_cfg), dim=1)
    return _held_up(env, minimal_height, object_cfg, ee_cfg, max_ee_distance) * (1.0 - torch.tanh(distance / std))


def object_lift_progress(env: Any, rest_height: float, command_name: str, action_name: str,
                         object_cfg: SceneEntityCfg, ee_cfg: SceneEntityCfg, min_opening: float, max_ee_distance: float,
                         max_above_goal: float = 0.03, robot_cfg: SceneEntityCfg = ROBOT) -> torch.Tensor:
    """How far a grasped object has been lifted from its rest toward the goal command's height, 0 to 1; 0 when it
    is not grasped (``object_grasped``) or is more than ``max_above_goal`` (m) above the goal.

    A binary lift (Isaac Lab's ``object_is_lifted``) pays nothing until the cube is 2 cm up, and a grasp on the
    table is a plateau exploration rarely leaves; a graded lift pays the first millimetres. Capped at the goal's
    height, since a lift that pays at any height lets a small arm hold the cube at the top of its travel, its
    joints against their limits where action noise cannot move them (docs/tasks.md, runs A, D, E)."""
    height = env.scene[object_cfg.name].data.root_pos_w.torch[:, 2] - rest_height
    above_goal = _height_above_goal(env, command_name, object_cfg, robot_cfg)
    progress = torch.clamp(height / torch.clamp(height - above_goal, min=1e-3), 0.0, 1.0)
    grasped = object_grasped(env, action_name, object_cfg, ee_cfg, min_opening, max_ee_distance)
    return grasped * progress * (above_goal <= max_above_goal).float()


def object_grasped(env: Any, action_name: str, object_cfg: SceneEntityCfg, ee_cfg: SceneEntityCfg,
                   min_opening: float, max_ee_distance: float) -> torch.Tensor:
    """1 where the gripper is told to close, its jaws have stopped short of closed (``min_opening`` rad: something
    is between them) and the object is at the hand. Binary gripper commands flip at random early in training and,
    through the servo's latency and slew, never close the jaws: this pays the first grasps (as ManiSkill's
    ``is_grasped``, from the jaw's stall rather than contact forces, which the embedded runtime does not report)."""
    term = env.action_manager.get_term(action_name)
    opening = term.measured_joint_pos[:, 0]
    held = _hand_distance(env, object_cfg, ee_cfg) < max_ee_distance
    return (term.closing & (opening > min_opening) & held).float()
