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
from roarm_lab.mdp.observations import hand_position_b


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
    """Samples targets from the reachable bank and scores each target segment by its final hand error.

    Metrics, logged by the command manager at each reset as ``Metrics/<name>/<metric>`` (Isaac Lab's
    mechanism, on both runtimes): ``position_error`` (m, at the last update) and ``success_rate``, the
    fraction of this episode's target segments that ended within ``success_threshold_m``. Isaac Lab refreshes
    metrics in ``compute``, after the resets of a step, so the last segment of an episode is scored one
    control step before its end.
    """

    cfg: "ReachableTargetCommandCfg"

    def __init__(self, cfg: "ReachableTargetCommandCfg", env: Any):
        super().__init__(cfg, env)
        self.robot = env.scene[cfg.asset_name]
        self.body_idx = self.robot.find_bodies(cfg.body_name)[0][0]
        seed = cfg.seed + (cfg.held_out_seed_offset if cfg.held_out else 0)
        bank = reachable_target_bank(cfg.joint_box, cfg.bank_size, seed, cfg.min_height_above_table_m, cfg.min_radius_m)
        self.bank = torch.as_tensor(bank, dtype=torch.float32, device=self.device)
        self.pos_command_b = torch.zeros(self.num_envs, 3, device=self.device)
        self.metrics["position_error"] = torch.zeros(self.num_envs, device=self.device)
        self.metrics["success_rate"] = torch.zeros(self.num_envs, device=self.device)
        self._segments = torch.zeros(2, self.num_envs, device=self.device)  # [ended, of which within threshold]

    def __str__(self) -> str:
        return f"ReachableTargetCommand(bank={len(self.bank)}, held_out={self.cfg.held_out})"

    @property
    def command(self) -> torch.Tensor:
        return self.pos_command_b

    def position_error(self) -> torch.Tensor:
        """Distance from the hand to the target now (m)."""
        return torch.linalg.vector_norm(self.pos_command_b - hand_position_b(self.robot, self.body_idx), dim=-1)

    def reset(self, env_ids: Any = None) -> dict[str, torch.Tensor]:
        self._score_segments(env_ids)  # the episode's last segment ends with it
        extras = super().reset(env_ids)
        self._segments[:, slice(None) if env_ids is None else env_ids] = 0.0
        return extras

    def _score_segments(self, env_ids: Any) -> None:
        """Count the segments of ``env_ids`` that are ending (those that had a target: counter > 0)."""
        ids = torch.arange(self.num_envs, device=self.device)[slice(None) if env_ids is None else env_ids]
        ids = ids[self.command_counter[ids] > 0]
        self._segments[0, ids] += 1.0
        self._segments[1, ids] += (self.metrics["position_error"][ids] < self.cfg.success_threshold_m).float()
        self.metrics["success_rate"][ids] = self._segments[1, ids] / self._segments[0, ids]

    def _resample_command(self, env_ids: Any) -> None:
        if isinstance(env_ids, torch.Tensor):  # a timer resample in compute (reset() scored its own)
            self._score_segments(env_ids)
        count = len(range(self.num_envs)[env_ids]) if isinstance(env_ids, slice) else len(env_ids)
        pick = torch.randint(0, len(self.bank), (count,), device=self.device)
        self.pos_command_b[env_ids] = self.bank[pick]

    def _update_command(self) -> None:
        pass

    def _update_metrics(self) -> None:
        self.metrics["position_error"][:] = self.position_error()


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
    """Draw the bank from the held-out stream (``seed + held_out_seed_offset``): targets training never saw."""
    held_out_seed_offset: int = 1_000_003
    success_threshold_m: float = 0.02
    """A target segment succeeds if it ends with the hand this close (m); evaluation and the bridge read it here."""
