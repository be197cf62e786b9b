"""Event manager: domain randomization and resets, by mode ("startup", "reset", "interval").

Where every reset term has a fused form (``mdp.fused.events``), a reset draws each term's numbers as the term
would, runs one compiled call that writes them all, and pushes the changed fields of the articulation into the
engine once (one forward pass); otherwise each term runs in turn. Start-up and interval terms always run readable.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from roarm_lab.embedded.managers.base import iter_terms, resolve_term
from roarm_lab.embedded.managers.fused import FusedRows, bind_terms, no_finish, view

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
        self._fused_reset: Any = False  # built at the first reset: the action and command terms exist by then

    def _fuse_reset(self) -> tuple[FusedRows, list, dict[str, dict[str, Any]], list] | None:
        """The reset terms as one call: (the call, each term's draw, the fields written per asset, each term's
        engine write after the call); or None."""
        bound = bind_terms(self._env, "reset event", self._terms["reset"])
        if not bound:
            return None
        from roarm_lab.mdp.fused.common import Slot

        forms, draws, writes, after, first = [], [], {}, [], 0
        for event in bound:
            arrays = tuple(Slot(first + a.index) if isinstance(a, Slot) else a for a in event.term.arrays)
            slots = sum(isinstance(a, Slot) for a in event.term.arrays)  # the first draws go to the kernel
            first += slots
            forms.append(type(event.term)(event.term.kernel, arrays, event.term.ints, event.term.floats))
            draws.append((event.draw, slots))
            after.append(event.after)
            for asset, fields in event.writes.items():
                merged = writes.setdefault(asset, {})
                for name, cols in fields.items():  # the union of the joints written (None: all)
                    old = merged.get(name, ())
                    merged[name] = None if cols is None or old is None else np.union1d(old, cols).astype(np.int64)
        return FusedRows(forms, no_finish, 0, whole=True), draws, writes, after

    def _apply_fused_reset(self, env_ids: torch.Tensor) -> None:
        run, draws, writes, after = self._fused_reset
        rows = view(env_ids.to(torch.int64).contiguous())
        n = len(rows)
        drawn = [draw(n) for draw, _ in draws]  # in the terms' order, as the terms draw
        run(rows, *(view(value.contiguous()) for values, (_, slots) in zip(drawn, draws) for value in values[:slots]))
        for write, values in zip(after, drawn):
            if write is not None:
                write(rows, values)
        for asset, fields in writes.items():
            self._env.scene[asset].write_rows_to_sim(rows, fields)

    @property
    def active_terms(self) -> dict[str, list[str]]:
        return {mode: [name for name, _, _ in terms] for mode, terms in self._terms.items()}

    def _sample_interval(self, term_cfg: Any) -> torch.Tensor:
        lo, hi = term_cfg.interval_range_s
        return torch.empty(self._env.num_envs, device=self._env.device).uniform_(lo, hi)

    def apply(self, mode: str, env_ids: torch.Tensor | None = None, dt: float | None = None) -> None:
        if mode == "reset" and isinstance(env_ids, torch.Tensor):
            if self._fused_reset is False:
                self._fused_reset = self._fuse_reset()
            if self._fused_reset is not None:
                self._apply_fused_reset(env_ids)
                return
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
