"""The reach target: a hand position in the robot base frame, drawn from the arm's reachable workspace.

Reachability is checked with the model, not guessed as a box: a bank of targets is made by sampling
joint vectors inside a joint box (within the safe box), running the model's forward kinematics, and
keeping the points above the table and outside the base. ``held_out=True`` draws the bank from a
separate random stream, so evaluation targets are points training never saw.

With the base sampled inside +-2.2 rad, the shoulder leaning back over the base puts 3.8 % of the points behind
it (beyond 126 deg of azimuth). The arm reaches each of those facing it too, but only with the base turned past
2.2 rad, a range training hardly practises: a policy reached 18 % of those beyond 135 deg, 98.6 % elsewhere. The task
keeps the points it can reach facing them (``facing_base_range``). Sampling the base over its whole safe box
instead covers the circle, but 700 iterations did not learn it (docs/benchmarks_history.md).

A fraction of training targets (``failure_weighted_fraction``, off by default) can be drawn by region, each
region as often as the failures expected there (its share of the bank times the policy's recent failure rate
there). Evaluation (``held_out``) draws uniformly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from roarm_lab.assets.joint_table import ARM_JOINTS, BASE_HEIGHT_M
from roarm_lab.assets.kinematics import tcp_positions_base
from roarm_lab.isaaclab_api import MISSING, CommandTerm, CommandTermCfg, configclass
from roarm_lab.mdp.observations import hand_position_b


def workspace_joint_box(joint_box: dict[str, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(lows, highs) of the arm joints (``ARM_JOINTS`` order) a bank samples: ``joint_box`` by short name, the
    safe box for joints it does not name. A range outside the safe box is refused: a file never widens it."""
    lows = np.array([joint_box.get(j.short, (j.lower, j.upper))[0] for j in ARM_JOINTS], dtype=float)
    highs = np.array([joint_box.get(j.short, (j.lower, j.upper))[1] for j in ARM_JOINTS], dtype=float)
    for j, lo, hi in zip(ARM_JOINTS, lows, highs):
        if lo < j.lower - 1e-9 or hi > j.upper + 1e-9 or lo > hi:
            raise ValueError(f"workspace joint box for '{j.short}' ({lo}, {hi}) must lie inside the safe box "
                             f"({j.lower}, {j.upper})")
    return lows, highs


def reachable_target_bank(joint_box: dict[str, tuple[float, float]], count: int, seed: int,
                          min_height_above_table_m: float, min_radius_m: float,
                          facing_base_range: bool = False) -> np.ndarray:
    """(count, 3) hand positions in the base frame, each reached by some joint vector in ``joint_box``.

    ``facing_base_range``: keep only the points whose azimuth lies in the box's base range, the points the arm
    reaches facing them. The others were reached with the shoulder leaning back over the base, but the arm
    reaches each of them facing it too, with the base turned past the box (``docs/benchmarks_history.md``).
    """
    rng = np.random.default_rng(seed)
    lows, highs = workspace_joint_box(joint_box)
    kept: list[np.ndarray] = []
    total = 0
    while total < count:
        q = rng.uniform(lows, highs, size=(max(count, 256), len(ARM_JOINTS)))
        p = tcp_positions_base(q)
        ok = (p[:, 2] + BASE_HEIGHT_M >= min_height_above_table_m) & (np.hypot(p[:, 0], p[:, 1]) >= min_radius_m)
        if facing_base_range:  # the hand lies in the arm's vertical plane: facing it, its azimuth is the base angle
            azimuth = np.arctan2(p[:, 1], p[:, 0])
            ok &= (azimuth >= lows[0] - 1e-6) & (azimuth <= highs[0] + 1e-6)
        kept.append(p[ok])
        total += int(ok.sum())
    return np.concatenate(kept)[:count]


def task_target_bank(cfg: "ReachableTargetCommandCfg", count: int, seed: int) -> np.ndarray:
    """The bank of a command config: training, evaluation and the emulator's random targets all draw from it."""
    return reachable_target_bank(cfg.joint_box, count, seed, cfg.min_height_above_table_m, cfg.min_radius_m,
                                 cfg.facing_base_range)


def workspace_regions(bank: np.ndarray, azimuth_bins: int, height_bins: int) -> np.ndarray:
    """Region index of each bank target: ``azimuth_bins`` equal sectors around the base axis times
    ``height_bins`` height bands at the bank's own quantiles (so each band holds about as many targets)."""
    azimuth = np.arctan2(bank[:, 1], bank[:, 0])
    sector = np.minimum(((azimuth + np.pi) / (2 * np.pi) * azimuth_bins).astype(np.int64), azimuth_bins - 1)
    edges = np.quantile(bank[:, 2], np.linspace(0.0, 1.0, height_bins + 1)[1:-1])
    band = np.searchsorted(edges, bank[:, 2], side="right")
    return sector * height_bins + band


class ReachableTargetCommand(CommandTerm):
    """Samples targets from the reachable bank and scores each target segment by its final hand error.

    Metrics, logged by the command manager at each reset as ``Metrics/<name>/<metric>`` (Isaac Lab's
    mechanism, on both runtimes): ``position_error`` (m, at the last update) and ``success_rate``, the
    fraction of this episode's target segments that ended within ``success_threshold_m``. Isaac Lab refreshes
    metrics in ``compute``, after the resets of a step, so the last segment of an episode is scored one
    control step before its end. With failure-weighted sampling on, training's success rate is measured on a
    harder mix of targets than the held-out evaluation's uniform one.

    The same scoring feeds the failure-weighted sampler: per workspace region (``workspace_regions``), decayed
    counts of the segments that ended there and of those that failed.
    """

    cfg: "ReachableTargetCommandCfg"

    def __init__(self, cfg: "ReachableTargetCommandCfg", env: Any):
        super().__init__(cfg, env)
        self.robot = env.scene[cfg.asset_name]
        self.body_idx = self.robot.find_bodies(cfg.body_name)[0][0]
        seed = cfg.seed + (cfg.held_out_seed_offset if cfg.held_out else 0)
        bank = task_target_bank(cfg, cfg.bank_size, seed)
        self.bank = torch.as_tensor(bank, dtype=torch.float32, device=self.device)
        self.pos_command_b = torch.zeros(self.num_envs, 3, device=self.device)
        self.metrics["position_error"] = torch.zeros(self.num_envs, device=self.device)
        self.metrics["success_rate"] = torch.zeros(self.num_envs, device=self.device)
        self._segments = torch.zeros(2, self.num_envs, device=self.device)  # [ended, of which within threshold]
        if not 0.0 <= float(cfg.failure_weighted_fraction) <= 1.0:
            raise ValueError(f"failure_weighted_fraction must lie in [0, 1], got {cfg.failure_weighted_fraction}")
        if len(cfg.regions) != 2 or min(cfg.regions) < 1 or not 0.0 < cfg.failure_memory_decay <= 1.0:
            raise ValueError(f"regions must be (azimuth sectors >= 1, height bands >= 1), got {cfg.regions}, and "
                             f"failure_memory_decay in (0, 1], got {cfg.failure_memory_decay}")
        self._weighted = 0.0 if cfg.held_out else float(cfg.failure_weighted_fraction)
        regions = workspace_regions(bank, *cfg.regions)
        num_regions = cfg.regions[0] * cfg.regions[1]
        counts = np.bincount(regions, minlength=num_regions)
        self._region_of = torch.as_tensor(regions, device=self.device)
        self._by_region = torch.as_tensor(np.argsort(regions, kind="stable"), device=self.device)
        self._region_start = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)[:-1]]), device=self.device)
        self._region_count = torch.as_tensor(counts, device=self.device)
        # decayed [ended, failed] per region; the prior (one ended, one failed) makes the weighted draws
        # uniform over the bank until the policy has been scored
        self._region_stats = torch.ones(2, num_regions, device=self.device)
        self._region_stats[:, counts == 0] = 0.0
        self._target_region = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self._resetting = False

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
        self._resetting = True  # the resample inside the base reset starts a segment: nothing ends there
        try:
            extras = super().reset(env_ids)
        finally:
            self._resetting = False
        self._segments[:, slice(None) if env_ids is None else env_ids] = 0.0
        return extras

    def _score_segments(self, env_ids: Any) -> None:
        """Count the segments of ``env_ids`` that are ending (those that had a target: counter > 0)."""
        ids = torch.arange(self.num_envs, device=self.device)[slice(None) if env_ids is None else env_ids]
        ids = ids[self.command_counter[ids] > 0]
        within = (self.metrics["position_error"][ids] < self.cfg.success_threshold_m).float()
        self._segments[0, ids] += 1.0
        self._segments[1, ids] += within
        self.metrics["success_rate"][ids] = self._segments[1, ids] / self._segments[0, ids]
        if self._weighted > 0.0:
            regions = self._target_region[ids]
            self._region_stats[0].index_add_(0, regions, torch.ones_like(within))
            self._region_stats[1].index_add_(0, regions, 1.0 - within)

    def region_failure_rate(self) -> torch.Tensor:
        """Recent failure rate per workspace region (the sampler's weights); 0 for regions with no targets."""
        ended, failed = self._region_stats
        return torch.where(ended > 0, failed / ended.clamp(min=1e-9), torch.zeros_like(ended))

    def _draw(self, count: int) -> torch.Tensor:
        """Bank indices: uniform, except a ``failure_weighted_fraction`` drawn by region, each region weighted by
        its expected failures (bank targets there times the recent failure rate there)."""
        pick = torch.randint(0, len(self.bank), (count,), device=self.device)
        if self._weighted == 0.0:
            return pick
        weighted = torch.rand(count, device=self.device) < self._weighted
        weights = self.region_failure_rate() * self._region_count
        k = int(weighted.sum())
        if k == 0 or float(weights.sum()) <= 0.0:
            return pick
        region = torch.multinomial(weights, k, replacement=True)
        within = (torch.rand(k, device=self.device) * self._region_count[region]).long()
        pick[weighted] = self._by_region[self._region_start[region] + within]
        return pick

    def _resample_command(self, env_ids: Any) -> None:
        if not self._resetting:  # a timer resample in compute (reset() scored its own)
            self._score_segments(env_ids)
        count = len(range(self.num_envs)[env_ids]) if isinstance(env_ids, slice) else len(env_ids)
        pick = self._draw(count)
        self.pos_command_b[env_ids] = self.bank[pick]
        if self._weighted > 0.0:  # only the sampler reads it: nothing more per resample when it is off
            self._target_region[env_ids] = self._region_of[pick]

    def _update_command(self) -> None:
        pass

    def _update_metrics(self) -> None:
        self.metrics["position_error"][:] = self.position_error()
        if self._weighted > 0.0:
            self._region_stats.mul_(self.cfg.failure_memory_decay)


@configclass
class ReachableTargetCommandCfg(CommandTermCfg):
    class_type: type = ReachableTargetCommand
    asset_name: str = MISSING
    body_name: str = MISSING
    joint_box: dict[str, tuple[float, float]] = {}
    """Per-joint (short name) sampling range; joints not named use the safe box."""
    min_height_above_table_m: float = 0.04
    min_radius_m: float = 0.12
    facing_base_range: bool = False
    """Keep only targets whose azimuth lies in ``joint_box``'s base range (see ``reachable_target_bank``)."""
    bank_size: int = 20000
    seed: int = 0
    held_out: bool = False
    """Draw the bank from the held-out stream (``seed + held_out_seed_offset``): targets training never saw."""
    held_out_seed_offset: int = 1_000_003
    failure_weighted_fraction: float = 0.0
    """In training, this fraction of targets is drawn by region, each region weighted by its expected failures
    (its bank targets times its recent failure rate); the rest uniformly. 0: all uniform. Held-out (evaluation)
    banks are always drawn uniformly."""
    regions: tuple[int, int] = (12, 3)
    """Workspace regions of the failure-weighted sampler: (azimuth sectors, height bands)."""
    failure_memory_decay: float = 0.999
    """Per control step decay of the regions' counts: about 1000 steps (33 s of simulated time per env) of memory."""
    success_threshold_m: float = 0.02
    """A target segment succeeds if it ends with the hand this close (m); evaluation and the bridge read it here."""
