"""The lift task's own MDP terms (the shared ones are ``roarm_lab.mdp``'s)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from roarm_lab.assets.kinematics import hand_down_ik
from roarm_lab.isaaclab_api import ManagerTermBase, SceneEntityCfg
from roarm_lab.mdp.events import env_index


MAX_POSES = 1024
ATTEMPTS_PER_POSE = 20


@lru_cache(maxsize=4)
def grasp_ready_poses(count: int, x_range: tuple[float, float], y_range: tuple[float, float],
                      yaw_range: tuple[float, float], cube_z: float, frame: str, start: tuple[float, ...],
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(poses (K, 5), cubes (K, 3): x, y, yaw): arm joints with the open jaws around a cube lying at (x, y, yaw).

    The hand points down with the jaws across the cube's faces and its grasp frame at the cube's centre."""
    if not 1 <= count <= MAX_POSES:
        raise ValueError(f"reset_grasp_ready: count must be 1..{MAX_POSES} poses, got {count}")
    rng = np.random.default_rng(seed)
    poses, cubes = [], []
    q = np.array(start, dtype=np.float64)
    for _ in range(ATTEMPTS_PER_POSE * count):
        if len(poses) == count:
            break
        x, y, yaw = rng.uniform(*x_range), rng.uniform(*y_range), rng.uniform(*yaw_range)
        solved = hand_down_ik(np.array([x, y, cube_z]), yaw, q, frame=frame)
        if solved is not None:
            poses.append(solved)
            cubes.append((x, y, yaw))
            q = solved
    if len(poses) < count:
        raise ValueError(f"reset_grasp_ready: only {len(poses)} of {count} cube placements in x {x_range}, y {y_range}, "
                         f"yaw {yaw_range} can be grasped with the hand pointing down; bring the ranges within reach")
    return np.array(poses), np.array(cubes)


class reset_grasp_ready(ManagerTermBase):
    """A fraction of resets start with the open jaws around the cube: a start-state curriculum.

    Grasping must be found before lifting and carrying pay, and a random policy rarely closes the jaws at the
    right place; starting some episodes there lets the later stages learn while the reach is still being
    learnt. Evaluation drops this term (``evaluation_mode``): success is measured from the normal start.
    """

    fused_form = "roarm_lab.tasks.lift.fused:grasp_ready"
    """Its compiled form for the embedded runtime's reset (``roarm_lab.mdp.fused``), imported only there."""

    def __init__(self, cfg: Any, env: Any):
        super().__init__(cfg, env)
        p = cfg.params
        robot = env.scene[p["asset_cfg"].name]
        home = robot.data.default_joint_pos.torch[0, p["asset_cfg"].joint_ids].cpu().numpy()
        poses, cubes = grasp_ready_poses(p["count"], tuple(p["x_range"]), tuple(p["y_range"]), tuple(p["yaw_range"]),
                                         p["cube_z"], p["frame"], tuple(float(v) for v in home), p.get("seed", 0))
        self._poses = torch.as_tensor(poses, dtype=torch.float32, device=env.device)
        self._cubes = torch.as_tensor(cubes, dtype=torch.float32, device=env.device)

    def __call__(self, env: Any, env_ids: Any, fraction: float, count: int, x_range: tuple[float, float],
                 y_range: tuple[float, float], yaw_range: tuple[float, float], cube_z: float, frame: str,
                 asset_cfg: SceneEntityCfg, object_cfg: SceneEntityCfg, seed: int = 0) -> None:
        ids = env_index(env, env_ids)
        ids = ids[torch.rand(len(ids), device=env.device) < fraction]
        if len(ids) == 0:
            return
        pick = torch.randint(len(self._poses), (len(ids),), device=env.device)
        robot, cube = env.scene[asset_cfg.name], env.scene[object_cfg.name]
        joints = asset_cfg.joint_ids
        robot.write_joint_position_to_sim_index(position=self._poses[pick], joint_ids=joints, env_ids=ids)
        robot.write_joint_velocity_to_sim_index(velocity=torch.zeros_like(self._poses[pick]), joint_ids=joints,
                                                env_ids=ids)
        x, y, yaw = self._cubes[pick].unbind(1)
        half = yaw / 2
        zero = torch.zeros_like(x)
        pose = torch.stack([x, y, zero + cube_z, zero, zero, half.sin(), half.cos()], dim=1)
        cube.write_root_pose_to_sim_index(root_pose=pose, env_ids=ids)
        cube.write_root_velocity_to_sim_index(root_velocity=torch.zeros(len(ids), 6, device=env.device), env_ids=ids)
