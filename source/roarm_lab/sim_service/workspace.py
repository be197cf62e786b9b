"""Is a hand target reachable? The task's own reachable-target bank decides (not a guessed box).

The bank is the one the task's command samples from (forward kinematics of joint vectors in the command's
joint box, above the table, outside the base, in front of the base turned within the box). A target counts
as reachable when a bank point lies within ``tolerance_m`` of it. The simulator and the real-arm tools both
ask here before they move anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

BANK_SIZE = 20000
TOLERANCE_M = 0.02


@dataclass(frozen=True)
class Reach:
    ok: bool
    nearest: tuple[float, float, float]
    """The nearest bank point (base frame, m)."""
    distance_m: float


class Workspace:
    def __init__(self, bank: np.ndarray, tolerance_m: float = TOLERANCE_M):
        self.bank = np.asarray(bank, dtype=np.float64)
        self.tolerance_m = tolerance_m

    def check(self, target: np.ndarray) -> Reach:
        d = np.linalg.norm(self.bank - np.asarray(target, dtype=np.float64).reshape(1, 3), axis=1)
        i = int(np.argmin(d))
        return Reach(bool(d[i] <= self.tolerance_m), tuple(float(v) for v in self.bank[i]), float(d[i]))

    def describe(self, target: np.ndarray) -> str:
        """Why a target is refused, with the nearest reachable point (for error messages)."""
        r = self.check(target)
        lo, hi = self.bank.min(axis=0), self.bank.max(axis=0)
        return (f"target {np.round(target, 3).tolist()} m (base frame) is {100 * r.distance_m:.1f} cm from the arm's "
                f"reachable workspace; the nearest reachable point is {np.round(r.nearest, 3).tolist()}; the workspace "
                f"spans x {lo[0]:.2f}..{hi[0]:.2f}, y {lo[1]:.2f}..{hi[1]:.2f}, z {lo[2]:.2f}..{hi[2]:.2f} m")


@lru_cache(maxsize=4)
def task_workspace(task: str) -> Workspace:
    """The hand's workspace for a task: its command's own bank where the command draws hand targets from one
    (reach), else the arm's whole safe box above the table (a task whose goals are for an object)."""
    from roarm_lab.mdp.commands import ReachableTargetCommandCfg, reachable_target_bank, task_target_bank
    from roarm_lab.registry import load_cfg_from_registry, task_profile

    cmd = getattr(load_cfg_from_registry(task, "env_cfg_entry_point").commands, task_profile(task).command)
    if isinstance(cmd, ReachableTargetCommandCfg):
        return Workspace(task_target_bank(cmd, BANK_SIZE, cmd.seed))
    return Workspace(reachable_target_bank({}, BANK_SIZE, 0, min_height_above_table_m=0.02, min_radius_m=0.1))
