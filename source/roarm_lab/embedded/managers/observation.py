"""Observation manager: evaluates term functions per group, adds noise, clips, scales, concatenates.

``compute_group`` is the single observation builder: the simulator calls it, and the real-arm bridge
calls the same term functions on an arm-backed view (see ``roarm_lab.rl.export`` for the layout).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import logging

import torch

from roarm_lab.embedded.managers.base import ManagerTermBase, resolve_term
from roarm_lab.embedded.managers.fused import FusedRows, bind_terms, no_finish, view
from roarm_lab.embedded.noise import uniform_noise

log = logging.getLogger(__name__)

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
        self._fused: dict[str, tuple[bool, FusedRows, list[torch.Tensor]] | None] = {}

    @property
    def active_terms(self) -> dict[str, list[str]]:
        return {g: [name for name, _, _ in terms] for g, (_, terms) in self._groups.items()}

    def _eval(self, term_cfg: Any, fn: Any) -> torch.Tensor:
        return fn(self._env, **term_cfg.params)

    def _fuse_group(self, group: str, corrupt: bool) -> tuple[bool, FusedRows, list[torch.Tensor]] | None:
        """The group as one compiled call (``embedded/managers/fused.py``): each term's form writes its columns, then
        each noisy term's uniform noise is added from draws made as ``noise.uniform_noise`` makes them. None (the
        readable path) where a term has no form, or clips, scales or has another kind of noise."""
        group_cfg, terms = self._groups[group]
        bound = bind_terms(self._env, f"observation group '{group}'", terms)
        if bound is None:
            return None
        forms, draws, col = [], [], 0
        noisy = []
        for (name, cfg, _), form, dim in zip(terms, bound, self.group_obs_term_dim[group]):
            if cfg.clip is not None or cfg.scale is not None:
                log.info("observation term '%s' clips or scales: group '%s' runs its readable path", name, group)
                return None
            forms.append(type(form)(form.kernel, form.arrays, (*form.ints, col), form.floats))
            if corrupt and cfg.noise is not None:
                if cfg.noise.func is not uniform_noise or cfg.noise.operation != "add":
                    log.info("observation term '%s' has noise without a fused form: group '%s' runs its readable "
                             "path", name, group)
                    return None
                noisy.append((cfg.noise, dim[0], col))
            col += dim[0]
        from roarm_lab.mdp.fused import FusedTerm
        from roarm_lab.mdp.fused.observations import uniform_noise_kernel

        # one draw for the group: torch's CPU generator fills a tensor in order, so consecutive (N, dim) blocks of one
        # uniform_ call hold what one rand_like per term would (the parity tests hold this)
        n = self._env.num_envs
        flat = torch.empty(n * sum(dim for _, dim, _ in noisy), device=self._env.device)
        first = 0
        for noise, dim, start in noisy:
            block = flat[first:first + n * dim].view(n, dim)
            first += n * dim
            forms.append(FusedTerm(uniform_noise_kernel, (view(block),), (start,),
                                   (noise.n_max - noise.n_min, noise.n_min)))
        if noisy:
            draws.append(flat)
        return corrupt, FusedRows(forms, no_finish, 0, whole=True), draws

    def _compute_fused(self, group: str, corrupt: bool) -> torch.Tensor | None:
        fused = self._fused.get(group, False)
        if fused is not None and (fused is False or fused[0] != corrupt):
            fused = self._fused[group] = self._fuse_group(group, corrupt)
        if fused is None:
            return None
        _, run, draws = fused
        for draw in draws:
            draw.uniform_()  # the draws of the terms' torch.rand_like, in their order
        out = torch.empty(self._env.num_envs, self.group_obs_dim[group][0], device=self._env.device)
        run(out.numpy())
        return out

    def compute_group(self, group: str) -> torch.Tensor:
        group_cfg, terms = self._groups[group]
        fused = self._compute_fused(group, bool(group_cfg.enable_corruption))
        if fused is not None:
            return fused
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
