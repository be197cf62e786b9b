"""Observation manager: evaluates term functions per group, adds noise, clips, scales, concatenates.

``compute_group`` is the single observation builder: the simulator calls it, and the real-arm bridge
calls the same term functions on an arm-backed view (see ``roarm_lab.rl.export`` for the layout).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from roarm_lab.embedded.managers.base import ManagerTermBase, resolve_term

_GROUP_SETTINGS = {"concatenate_terms", "enable_corruption", "concatenate_dim", "history_length",
                   "flatten_history_dim"}


def group_terms(group_cfg: Any) -> list[tuple[str, Any]]:
    """The observation terms of a group config, in order (its settings fields are skipped)."""
    return [(f.name, getattr(group_cfg, f.name)) for f in dataclasses.fields(group_cfg)
            if f.name not in _GROUP_SETTINGS and getattr(group_cfg, f.name) is not None]


class ObservationManager:
    def __init__(self, cfg: Any, env: Any):
        self._env = env
        self._groups: dict[str, tuple[Any, list[tuple[str, Any, Any]]]] = {}
        self.group_obs_term_dim: dict[str, list[tuple[int, ...]]] = {}
        self.group_obs_dim: dict[str, tuple[int, ...]] = {}
        for f in dataclasses.fields(cfg):
            group_cfg = getattr(cfg, f.name)
            if group_cfg is None:
                continue
            terms = [(name, t, resolve_term(name, t, env, f"observation '{f.name}'")) for name, t in group_terms(group_cfg)]
            self._groups[f.name] = (group_cfg, terms)
        for group, (_, terms) in self._groups.items():
            dims = [tuple(self._eval(t, fn).shape[1:]) for _, t, fn in terms]
            self.group_obs_term_dim[group] = dims
            self.group_obs_dim[group] = (sum(d[0] for d in dims),)

    @property
    def active_terms(self) -> dict[str, list[str]]:
        return {g: [name for name, _, _ in terms] for g, (_, terms) in self._groups.items()}

    def _eval(self, term_cfg: Any, fn: Any) -> torch.Tensor:
        return fn(self._env, **term_cfg.params)

    def compute_group(self, group: str) -> torch.Tensor:
        group_cfg, terms = self._groups[group]
        parts = []
        for _, term_cfg, fn in terms:
            obs = self._eval(term_cfg, fn)
            if group_cfg.enable_corruption and term_cfg.noise is not None:
                obs = term_cfg.noise.func(obs, term_cfg.noise)
            if term_cfg.clip is not None:
                obs = obs.clip(*term_cfg.clip)
            if term_cfg.scale is not None:
                obs = obs * torch.as_tensor(term_cfg.scale, device=obs.device)
            parts.append(obs)
        return torch.cat(parts, dim=-1)

    def compute(self) -> dict[str, torch.Tensor]:
        return {group: self.compute_group(group) for group in self._groups}

    def reset(self, env_ids: torch.Tensor) -> dict[str, float]:
        for _, (_, terms) in self._groups.items():
            for _, _, fn in terms:
                if isinstance(fn, ManagerTermBase):
                    fn.reset(env_ids)
        return {}
