"""Termination manager: ORs the done terms; time-out terms are reported apart (they are not failures)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from roarm_lab.embedded.managers.base import iter_terms, resolve_term
from roarm_lab.embedded.managers.fused import FusedRows, bind_terms, count_rows, or_rows, view


class TerminationManager:
    def __init__(self, cfg: Any, env: Any):
        self._env = env
        self._terms = [(name, t, resolve_term(name, t, env, "termination")) for name, t in iter_terms(cfg)]
        n = env.num_envs
        self._term_dones = {name: torch.zeros(n, dtype=torch.bool, device=env.device) for name, _, _ in self._terms}
        self.terminated = torch.zeros(n, dtype=torch.bool, device=env.device)
        self.time_outs = torch.zeros(n, dtype=torch.bool, device=env.device)
        self._fused = None
        bound = bind_terms(env, "termination", self._terms)
        if bound is not None:
            rows = torch.zeros(len(self._terms), n, dtype=torch.bool, device=env.device)
            self._term_dones = {name: rows[i] for i, (name, _, _) in enumerate(self._terms)}
            self._fused = FusedRows(bound, or_rows, 3)
            self._fused_args = (view(rows), np.array([bool(cfg.time_out) for _, cfg, _ in self._terms]),
                                view(self.terminated), view(self.time_outs))

    @property
    def active_terms(self) -> list[str]:
        return [name for name, _, _ in self._terms]

    @property
    def dones(self) -> torch.Tensor:
        return self.terminated | self.time_outs

    def compute(self) -> torch.Tensor:
        if self._fused is not None:
            self._fused(*self._fused_args)
            return self.dones
        self.terminated.zero_()
        self.time_outs.zero_()
        for name, cfg, fn in self._terms:
            value = fn(self._env, **cfg.params)
            self._term_dones[name] = value
            if cfg.time_out:
                self.time_outs |= value
            else:
                self.terminated |= value
        return self.dones

    def get_term(self, name: str) -> torch.Tensor:
        return self._term_dones[name]

    def reset(self, env_ids: torch.Tensor) -> dict[str, float]:
        if self._fused is not None and isinstance(env_ids, torch.Tensor):
            counts = np.empty(len(self._terms), dtype=np.int64)
            count_rows(self._fused_args[0], view(env_ids.to(torch.int64).contiguous()), counts)
            return {f"Episode_Termination/{name}": count for (name, _, _), count in zip(self._terms, counts.tolist())}
        return {f"Episode_Termination/{name}": self._term_dones[name][env_ids].sum().item()
                for name in self._term_dones}
