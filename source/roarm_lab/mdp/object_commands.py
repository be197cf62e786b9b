"""The lift goal: a position above the table, in the robot's base frame, for an object to be carried to.

Drawn uniformly from a box (Isaac Lab's ``UniformPoseCommand``, position only). ``held_out=True`` draws from a
separate random stream, so evaluation goals are points training never saw. Metrics, logged at each reset as
``Metrics/<name>/<metric>``: ``goal_error`` (object to goal, m), ``lift_height`` (m above the object's resting
height) and ``success_rate``, whether the episode ended with the object within ``success_threshold_m`` of the goal
and at least ``min_lift_m`` above its rest (refreshed every step, so the logged value is the episode's last).
"""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.isaaclab_api import MISSING, CommandTerm, CommandTermCfg, configclass


class ObjectGoalCommand(CommandTerm):
    cfg: "ObjectGoalCommandCfg"

    def __init__(self, cfg: "ObjectGoalCommandCfg", env: Any):
        super().__init__(cfg, env)
        self.robot = env.scene[cfg.asset_name]
        self.object = env.scene[cfg.object_name]
        self.pos_command_b = torch.zeros(self.num_envs, 3, device=self.device)
        self._low = torch.tensor([r[0] for r in (cfg.ranges.pos_x, cfg.ranges.pos_y, cfg.ranges.pos_z)],
                                 device=self.device)
        self._high = torch.tensor([r[1] for r in (cfg.ranges.pos_x, cfg.ranges.pos_y, cfg.ranges.pos_z)],
                                  device=self.device)
        if bool((self._low > self._high).any()):
            raise ValueError(f"goal ranges must be (low, high): {cfg.ranges}")
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(cfg.seed + (cfg.held_out_seed_offset if cfg.held_out else 0))
        for name in ("goal_error", "lift_height", "success_rate"):
            self.metrics[name] = torch.zeros(self.num_envs, device=self.device)

    def __str__(self) -> str:
        return f"ObjectGoalCommand(object={self.cfg.object_name}, held_out={self.cfg.held_out})"

    @property
    def command(self) -> torch.Tensor:
        return self.pos_command_b

    def goal_error(self) -> torch.Tensor:
        """(num_envs,) distance from the object's centre to the goal (m)."""
        goal_w = self.pos_command_b + self.robot.data.root_pos_w.torch
        return torch.linalg.norm(goal_w - self.object.data.root_pos_w.torch, dim=1)

    def lift_height(self) -> torch.Tensor:
        """(num_envs,) height of the object's centre above its resting height (m)."""
        return self.object.data.root_pos_w.torch[:, 2] - self.cfg.rest_height_m

    def succeeded(self) -> torch.Tensor:
        return (self.goal_error() <= self.cfg.success_threshold_m) & (self.lift_height() >= self.cfg.min_lift_m)

    def _resample_command(self, env_ids: Any) -> None:
        count = len(range(self.num_envs)[env_ids]) if isinstance(env_ids, slice) else len(env_ids)
        u = torch.rand(count, 3, generator=self._generator, device=self.device)
        self.pos_command_b[env_ids] = self._low + u * (self._high - self._low)

    def _update_command(self) -> None:
        pass

    def _update_metrics(self) -> None:
        self.metrics["goal_error"][:] = self.goal_error()
        self.metrics["lift_height"][:] = self.lift_height()
        self.metrics["success_rate"][:] = self.succeeded().float()


@configclass
class ObjectGoalCommandCfg(CommandTermCfg):
    class_type: type = ObjectGoalCommand
    asset_name: str = MISSING
    object_name: str = MISSING

    @configclass
    class Ranges:
        pos_x: tuple[float, float] = MISSING
        pos_y: tuple[float, float] = MISSING
        pos_z: tuple[float, float] = MISSING
        """In the robot's base frame (m); the base stands ``BASE_HEIGHT_M`` above the table."""

    ranges: Ranges = MISSING
    rest_height_m: float = MISSING
    """The object's centre at rest on the table (world z): its half height."""
    success_threshold_m: float = 0.025
    min_lift_m: float = 0.02
    seed: int = 0
    held_out: bool = False
    held_out_seed_offset: int = 1_000_003
