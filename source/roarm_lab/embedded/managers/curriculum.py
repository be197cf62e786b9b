"""Curriculum manager: terms that change the task (for example reward weights) as training goes on."""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.embedded.managers.base import iter_terms, resolve_term


class CurriculumManager:
    def __init__(self, cfg: Any, env: Any):
        self._env = env
        self._terms = [(name, t, resolve_term(name, t, env, "curriculum", leading=2)) for name, t in iter_terms(cfg)]
        self._state: dict[str, float] = {}

    @property
    def active_terms(self) -> list[str]:
        return [name for name, _, _ in self._terms]

    def compute(self, env_ids: torch.Tensor) -> None:
        for name, cfg, fn in self._terms:
            value = fn(self._env, env_ids, **cfg.params)
            if value is not None:
                self._state[name] = float(value)

    def reset(self, env_ids: torch.Tensor) -> dict[str, float]:
        return {f"Curriculum/{name}": value for name, value in self._state.items()}
