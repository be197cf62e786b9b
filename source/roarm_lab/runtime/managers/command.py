"""Command manager: goals that are resampled on a timer and logged as metrics at every reset."""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.runtime.managers.base import iter_terms


class CommandTerm:
    """Base of command terms: owns the resampling timer and the per-episode metric sums."""

    def __init__(self, cfg: Any, env: Any):
        self.cfg = cfg
        self._env = env
        self.num_envs = env.num_envs
        self.device = env.device
        self.time_left = torch.zeros(self.num_envs, device=self.device)
        self.command_counter = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.metrics: dict[str, torch.Tensor] = {}

    @property
    def command(self) -> torch.Tensor:
        raise NotImplementedError

    def reset(self, env_ids: torch.Tensor) -> dict[str, float]:
        extras = self._episode_metrics(env_ids)
        self.command_counter[env_ids] = 0
        self._resample(env_ids)
        return extras

    def update_metrics(self) -> None:
        self._update_metrics()

    def compute(self, dt: float) -> None:
        self.time_left -= dt
        due = (self.time_left <= 0.0).nonzero(as_tuple=False).flatten()
        if len(due) > 0:
            self._on_segment_end(due)
            self._resample(due)
        self._update_command()

    def _resample(self, env_ids: torch.Tensor) -> None:
        lo, hi = self.cfg.resampling_time_range
        self.time_left[env_ids] = torch.empty(len(env_ids), device=self.device).uniform_(lo, hi)
        self.command_counter[env_ids] += 1
        self._resample_command(env_ids)

    # subclasses
    def _resample_command(self, env_ids: torch.Tensor) -> None:
        raise NotImplementedError

    def _update_command(self) -> None:
        pass

    def _update_metrics(self) -> None:
        pass

    def _on_segment_end(self, env_ids: torch.Tensor) -> None:
        pass

    def _episode_metrics(self, env_ids: torch.Tensor) -> dict[str, float]:
        return {}


class CommandManager:
    def __init__(self, cfg: Any, env: Any):
        self._terms: dict[str, CommandTerm] = {}
        for name, term_cfg in iter_terms(cfg):
            self._terms[name] = term_cfg.class_type(term_cfg, env)

    @property
    def active_terms(self) -> list[str]:
        return list(self._terms)

    def get_term(self, name: str) -> CommandTerm:
        if name not in self._terms:
            raise KeyError(f"unknown command '{name}'; available: {self.active_terms}")
        return self._terms[name]

    def get_command(self, name: str) -> torch.Tensor:
        return self.get_term(name).command

    def update_metrics(self) -> None:
        """Refresh the metrics from the new physics state (before resets, so episode metrics are final)."""
        for term in self._terms.values():
            term.update_metrics()

    def compute(self, dt: float) -> None:
        for term in self._terms.values():
            term.compute(dt)

    def reset(self, env_ids: torch.Tensor) -> dict[str, float]:
        extras: dict[str, float] = {}
        for name, term in self._terms.items():
            for key, value in term.reset(env_ids).items():
                extras[f"Metrics/{name}/{key}"] = value
        return extras
