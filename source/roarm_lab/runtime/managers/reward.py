"""Reward manager: weighted sum of terms, each weight multiplied by the step dt (Isaac Lab's convention)."""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.runtime.managers.base import ManagerTermBase, iter_terms, resolve_term


class RewardManager:
    def __init__(self, cfg: Any, env: Any):
        self._env = env
        self._terms = [(name, t, resolve_term(name, t, env, "reward")) for name, t in iter_terms(cfg)]
        n = env.num_envs
        self._reward_buf = torch.zeros(n, device=env.device)
        self._episode_sums = {name: torch.zeros(n, device=env.device) for name, _, _ in self._terms}

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

    def compute(self, dt: float) -> torch.Tensor:
        self._reward_buf.zero_()
        for name, cfg, fn in self._terms:
            if cfg.weight == 0.0:
                continue
            value = fn(self._env, **cfg.params) * (cfg.weight * dt)
            self._reward_buf += value
            self._episode_sums[name] += value
        return self._reward_buf

    def reset(self, env_ids: torch.Tensor) -> dict[str, float]:
        extras = {}
        max_len_s = self._env.max_episode_length_s
        for name, sums in self._episode_sums.items():
            extras[f"Episode_Reward/{name}"] = (sums[env_ids].mean() / max_len_s).item()
            sums[env_ids] = 0.0
        for _, _, fn in self._terms:
            if isinstance(fn, ManagerTermBase):
                fn.reset(env_ids)
        return extras
