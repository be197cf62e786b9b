"""Command manager: goals that are resampled on a timer and logged as metrics at every reset."""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.embedded.managers.base import iter_terms


class CommandTerm:
    """Base of command terms, with Isaac Lab 3's timing: metrics are refreshed in ``compute`` (after the resets
    of a step), each reset logs the mean of every ``self.metrics`` tensor over the reset environments and zeroes
    it, then resamples."""

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

    def reset(self, env_ids: Any = None) -> dict[str, torch.Tensor]:
        env_ids = slice(None) if env_ids is None else env_ids
        extras = {}
        for name, value in self.metrics.items():
            extras[name] = torch.mean(value[env_ids])
            value[env_ids] = 0.0
        self.command_counter[env_ids] = 0
        self._resample(env_ids)
        return extras

    def compute(self, dt: float) -> None:
        self._update_metrics()
        self.time_left -= dt
        due = (self.time_left <= 0.0).nonzero().flatten()
        if len(due) > 0:
            self._resample(due)
        self._update_command()

    def _resample(self, env_ids: Any) -> None:
        count = len(range(self.num_envs)[env_ids]) if isinstance(env_ids, slice) else len(env_ids)
        if count == 0:
            return
        self.time_left[env_ids] = self.time_left[env_ids].uniform_(*self.cfg.resampling_time_range)
        self._resample_command(env_ids)
        self.command_counter[env_ids] += 1

    # subclasses
    def _resample_command(self, env_ids: Any) -> None:
        raise NotImplementedError

    def _update_command(self) -> None:
        raise NotImplementedError

    def _update_metrics(self) -> None:
        raise NotImplementedError


class CommandManager:
    """The command terms; a term with a fused form (``mdp.fused.commands``) computes and resets through it."""

    def __init__(self, cfg: Any, env: Any):
        self._terms: dict[str, CommandTerm] = {}
        for name, term_cfg in iter_terms(cfg):
            self._terms[name] = term_cfg.class_type(term_cfg, env)
        self._fused: dict[str, Any] = {}
        if getattr(env, "fused_managers", False):
            from roarm_lab.mdp.fused.commands import bind_command

            self._fused = {name: form for name, term in self._terms.items()
                           if (form := bind_command(env, term)) is not None}

    @property
    def active_terms(self) -> list[str]:
        return list(self._terms)

    def get_term(self, name: str) -> CommandTerm:
        if name not in self._terms:
            raise KeyError(f"unknown command '{name}'; available: {self.active_terms}")
        return self._terms[name]

    def get_command(self, name: str) -> torch.Tensor:
        return self.get_term(name).command

    def compute(self, dt: float) -> None:
        for name, term in self._terms.items():
            (self._fused.get(name) or term).compute(dt)

    def reset(self, env_ids: Any = None) -> dict[str, torch.Tensor]:
        extras: dict[str, torch.Tensor] = {}
        for name, term in self._terms.items():
            fused = self._fused.get(name) if isinstance(env_ids, torch.Tensor) else None
            for key, value in (fused or term).reset(env_ids).items():
                extras[f"Metrics/{name}/{key}"] = value
        return extras
