"""The reach target: a hand position in the robot base frame, drawn from the arm's reachable workspace.

Reachability is checked with the model, not guessed as a box: a bank of targets is made by sampling
joint vectors inside a joint box (within the safe box), running the model's forward kinematics, and
keeping the points above the table and outside the base. ``held_out=True`` draws the bank from a
separate random stream, so evaluation targets are points training never saw.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from roarm_lab.assets.joint_table import ARM_JOINTS, BASE_HEIGHT_M
from roarm_lab.assets.kinematics import tcp_positions_base
from roarm_lab.compat import MISSING, CommandTerm, CommandTermCfg, configclass


def reachable_target_bank(joint_box: dict[str, tuple[float, float]], count: int, seed: int,
                          min_height_above_table_m: float, min_radius_m: float) -> np.ndarray:
    """(count, 3) hand positions in the base frame, each reached by some joint vector in ``joint_box``."""
    rng = np.random.default_rng(seed)
    lows = np.array([joint_box.get(j.short, (j.lower, j.upper))[0] for j in ARM_JOINTS])
    highs = np.array([joint_box.get(j.short, (j.lower, j.upper))[1] for j in ARM_JOINTS])
    for j, lo, hi in zip(ARM_JOINTS, lows, highs):
        if lo < j.lower - 1e-9 or hi > j.upper + 1e-9 or lo > hi:
            raise ValueError(f"workspace joint box for '{j.short}' ({lo}, {hi}) must lie inside the safe box "
                             f"({j.lower}, {j.upper})")
    kept: list[np.ndarray] = []
    total = 0
    while total < count:
        q = rng.uniform(lows, highs, size=(max(count, 256), len(ARM_JOINTS)))
        p = tcp_positions_base(q)
        ok = (p[:, 2] + BASE_HEIGHT_M >= min_height_above_table_m) & (np.hypot(p[:, 0], p[:, 1]) >= min_radius_m)
        kept.append(p[ok])
        total += int(ok.sum())
    return np.concatenate(kept)[:count]


class ReachableTargetCommand(CommandTerm):
    """Samples targets from the reachable bank; tracks the error at the end of each target segment."""

    cfg: "ReachableTargetCommandCfg"

    def __init__(self, cfg: "ReachableTargetCommandCfg", env: Any):
        super().__init__(cfg, env)
        self.robot = env.scene[cfg.asset_name]
        self.body_idx = self.robot.find_bodies(cfg.body_name)[0][0]
        seed = cfg.seed + (1_000_003 if cfg.held_out else 0)
        bank = reachable_target_bank(cfg.joint_box, cfg.bank_size, seed, cfg.min_height_above_table_m, cfg.min_radius_m)
        self.bank = torch.as_tensor(bank, dtype=torch.float32, device=self.device)
        self.pos_command_b = torch.zeros(self.num_envs, 3, device=self.device)
        self.metrics["position_error"] = torch.zeros(self.num_envs, device=self.device)
        self.last_episode_final_error = torch.full((self.num_envs,), float("nan"), device=self.device)
        self._segment_counts = torch.zeros(2, device=self.device)  # [segments ended, of which successful]

    def __str__(self) -> str:
        return f"ReachableTargetCommand(bank={len(self.bank)}, held_out={self.cfg.held_out})"

    @property
    def command(self) -> torch.Tensor:
        return self.pos_command_b

    def ee_pos_b(self) -> torch.Tensor:
        return self.robot.data.body_pos_w[:, self.body_idx] - self.robot.data.root_pos_w

    def _resample_command(self, env_ids: torch.Tensor) -> None:
        pick = torch.randint(0, len(self.bank), (len(env_ids),), device=self.device)
        self.pos_command_b[env_ids] = self.bank[pick]

    def _update_metrics(self) -> None:
        self.metrics["position_error"] = torch.linalg.vector_norm(self.pos_command_b - self.ee_pos_b(), dim=-1)

    def _on_segment_end(self, env_ids: torch.Tensor) -> None:
        err = self.metrics["position_error"][env_ids]
        self._segment_counts[0] += len(env_ids)
        self._segment_counts[1] += (err < self.cfg.success_threshold_m).sum()

    def _episode_metrics(self, env_ids: torch.Tensor) -> dict[str, float]:
        # The episode's last segment ends now: count it, then report and clear the tallies. The metrics
        # were updated this step before any reset (CommandManager.update_metrics), so they are final.
        self._on_segment_end(env_ids)
        self.last_episode_final_error[env_ids] = self.metrics["position_error"][env_ids]
        ended, succeeded = self._segment_counts.tolist()
        self._segment_counts.zero_()
        err = self.metrics["position_error"][env_ids]
        return {"position_error": err.mean().item(),
                "success_rate": succeeded / max(ended, 1.0)}


@configclass
class ReachableTargetCommandCfg(CommandTermCfg):
    class_type: type = ReachableTargetCommand
    asset_name: str = MISSING
    body_name: str = MISSING
    joint_box: dict[str, tuple[float, float]] = {}
    """Per-joint (short name) sampling range; joints not named use the safe box."""
    min_height_above_table_m: float = 0.04
    min_radius_m: float = 0.12
    bank_size: int = 20000
    seed: int = 0
    held_out: bool = False
    success_threshold_m: float = 0.02
