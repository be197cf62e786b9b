"""Event manager: domain randomization and resets, by mode ("startup", "reset", "interval")."""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.embedded.managers.base import iter_terms, resolve_term

MODES = ("startup", "reset", "interval")


class EventManager:
    def __init__(self, cfg: Any, env: Any):
        self._env = env
        self._terms: dict[str, list[tuple[str, Any, Any]]] = {mode: [] for mode in MODES}
        for name, term_cfg in iter_terms(cfg):
            if term_cfg.mode not in MODES:
                raise ValueError(f"event term '{name}': mode '{term_cfg.mode}' is not one of {list(MODES)}")
            self._terms[term_cfg.mode].append((name, term_cfg, resolve_term(name, term_cfg, env, "event", leading=2)))
        self._interval_left = {
            name: self._sample_interval(cfg_) for name, cfg_, _ in self._terms["interval"]
        }

    @property
    def active_terms(self) -> dict[str, list[str]]:
        return {mode: [name for name, _, _ in terms] for mode, terms in self._terms.items()}

    def _sample_interval(self, term_cfg: Any) -> torch.Tensor:
        lo, hi = term_cfg.interval_range_s
        return torch.empty(self._env.num_envs, device=self._env.device).uniform_(lo, hi)

    def apply(self, mode: str, env_ids: torch.Tensor | None = None, dt: float | None = None) -> None:
        for name, term_cfg, fn in self._terms[mode]:
            if mode == "interval":
                left = self._interval_left[name]
                left -= dt
                ids = (left <= 0).nonzero(as_tuple=False).flatten()
                if len(ids) == 0:
                    continue
                left[ids] = self._sample_interval(term_cfg)[ids]
                fn(self._env, ids, **term_cfg.params)
            else:  # as in Isaac Lab, a startup term gets env_ids=None (all environments)
                fn(self._env, env_ids, **term_cfg.params)

    def reset(self, env_ids: torch.Tensor) -> dict[str, float]:
        return {}
