"""Reward manager: weighted sum of terms, each weight multiplied by the step dt (Isaac Lab's convention)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from roarm_lab.embedded.managers.base import ManagerTermBase, iter_terms, resolve_term
from roarm_lab.embedded.managers.fused import FusedRows, bind_terms, close_episode_sums, scale_rows, view


class RewardManager:
    """Each term's weighted value is written into one row of a (terms, envs) buffer: the step's reward and
    the episode sums are then one reduction and one addition, not two additions per term."""

    def __init__(self, cfg: Any, env: Any):
        self._env = env
        self._terms = [(name, t, resolve_term(name, t, env, "reward")) for name, t in iter_terms(cfg)]
        n, k = env.num_envs, len(self._terms)
        self._reward_buf = torch.zeros(n, device=env.device)
        self._step_values = torch.zeros(k, n, device=env.device)
        self._sums = torch.zeros(k, n, device=env.device)
        self._episode_sums = {name: self._sums[i] for i, (name, _, _) in enumerate(self._terms)}
        self._step_rows, self._sums_view = view(self._step_values), view(self._sums)
        self._fused = self._fuse()

    def _fuse(self) -> FusedRows | None:
        """The terms' fused forms as one call filling ``_step_values`` (None: the readable path)."""
        bound = bind_terms(self._env, "reward", self._terms)
        return None if bound is None else FusedRows(bound, scale_rows, 1)

    @property
    def active_terms(self) -> list[str]:
        return [name for name, _, _ in self._terms]

    def get_term_cfg(self, name: str) -> Any:
        for term_name, cfg, _ in self._terms:
            if term_name == name:
                return cfg
        raise KeyError(f"unknown reward term '{name}'; available: {self.active_terms}")

    def set_term_cfg(self, name: str, cfg: Any) -> None:
        self._terms = [(n, cfg if n == name else c, f) for n, c, f in self._terms]
        self._fused = self._fuse()  # the new parameters bound (a weight alone is read at each step)

    def compute(self, dt: float) -> torch.Tensor:
        values = self._step_values
        if self._fused is not None:
            self._fused(self._step_rows, np.array([cfg.weight * dt for _, cfg, _ in self._terms], dtype=np.float32))
            self._sums += values
            return torch.sum(values, dim=0, out=self._reward_buf)
        for row, (_, cfg, fn) in zip(values, self._terms):
            if cfg.weight == 0.0:
                row.zero_()
            else:
                torch.mul(fn(self._env, **cfg.params), cfg.weight * dt, out=row)
        self._sums += values
        return torch.sum(values, dim=0, out=self._reward_buf)

    def reset(self, env_ids: torch.Tensor) -> dict[str, float]:
        if self._fused is not None and isinstance(env_ids, torch.Tensor):
            sums = np.empty(len(self._terms))
            close_episode_sums(self._sums_view, view(env_ids.to(torch.int64).contiguous()), sums)
            means = (sums / self._env.max_episode_length_s).tolist()
        else:
            means = (self._sums[:, env_ids].mean(dim=1) / self._env.max_episode_length_s).tolist()
            self._sums[:, env_ids] = 0.0
        for _, _, fn in self._terms:
            if isinstance(fn, ManagerTermBase):
                fn.reset(env_ids)
        return {f"Episode_Reward/{name}": mean for (name, _, _), mean in zip(self._terms, means)}
