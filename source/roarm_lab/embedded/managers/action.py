"""Action manager: splits the policy's action vector among action terms and applies them.

Where every term has a fused form (``mdp.fused.actions``: the servo terms), processing is one compiled call over
the action and applying another over the articulation's joint targets.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from roarm_lab.embedded.managers.base import iter_terms
from roarm_lab.embedded.managers.fused import FusedRows, no_finish, view

log = logging.getLogger(__name__)


class ActionTerm:
    """Base of action terms (Isaac Lab's interface: process once per policy step, apply per physics step)."""

    def __init__(self, cfg: Any, env: Any):
        self.cfg = cfg
        self._env = env
        self._asset = env.scene[cfg.asset_name]

    @property
    def action_dim(self) -> int:
        raise NotImplementedError

    @property
    def raw_actions(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def processed_actions(self) -> torch.Tensor:
        raise NotImplementedError

    def process_actions(self, actions: torch.Tensor) -> None:
        raise NotImplementedError

    def apply_actions(self) -> None:
        raise NotImplementedError

    def reset(self, env_ids: torch.Tensor | None = None) -> None:
        pass


class ActionManager:
    def __init__(self, cfg: Any, env: Any):
        self._env = env
        self._terms: dict[str, ActionTerm] = {}
        for name, term_cfg in iter_terms(cfg):
            self._terms[name] = term_cfg.class_type(term_cfg, env)
        self.total_action_dim = sum(t.action_dim for t in self._terms.values())
        self._action = torch.zeros(env.num_envs, self.total_action_dim, device=env.device)
        self._prev_action = torch.zeros_like(self._action)
        self._fused = self._fuse(env)

    def _fuse(self, env: Any) -> tuple[FusedRows, FusedRows, FusedRows, Any, Any] | None:
        """(process, apply, reset, the action's view, the joint targets' view) or None: the readable path."""
        if not getattr(env, "fused_managers", False):
            return None
        from roarm_lab.mdp.fused.actions import bind_servo

        process, apply, reset, assets, start = [], [], [], set(), 0
        for name, term in self._terms.items():
            forms = bind_servo(env, term, start)
            if forms is None:
                log.info("action term '%s' has no fused form: the action terms run their readable path", name)
                return None
            process.append(forms[0])
            apply.append(forms[1])
            reset.append(forms[2])
            assets.add(term.cfg.asset_name)
            start += term.action_dim
        if len(assets) != 1:
            return None  # the apply call writes one articulation's targets
        targets = env.scene[assets.pop()].data.joint_pos_target.torch
        self._actions_view, self._prev_view = view(self._action), view(self._prev_action)
        return (FusedRows(process, no_finish, 0, whole=True), FusedRows(apply, no_finish, 0, whole=True),
                FusedRows(reset, no_finish, 0, whole=True), self._actions_view, view(targets))

    @property
    def active_terms(self) -> list[str]:
        return list(self._terms)

    @property
    def action(self) -> torch.Tensor:
        return self._action

    @property
    def prev_action(self) -> torch.Tensor:
        return self._prev_action

    def get_term(self, name: str) -> ActionTerm:
        return self._terms[name]

    def process_action(self, action: torch.Tensor) -> None:
        if action.shape != self._action.shape:
            raise ValueError(f"action has shape {tuple(action.shape)}, expected {tuple(self._action.shape)}")
        self._prev_action.copy_(self._action)
        self._action.copy_(action)
        if self._fused is not None:
            process, _, _, action_rows, _ = self._fused
            process(action_rows)
            return
        start = 0
        for term in self._terms.values():
            term.process_actions(self._action[:, start: start + term.action_dim])
            start += term.action_dim

    def apply_action(self) -> None:
        if self._fused is not None:
            _, apply, _, _, targets = self._fused
            apply(targets)
            return
        for term in self._terms.values():
            term.apply_actions()

    def reset(self, env_ids: torch.Tensor) -> dict[str, float]:
        self._prev_action[env_ids] = 0.0
        self._action[env_ids] = 0.0
        if self._fused is not None and isinstance(env_ids, torch.Tensor):
            self._fused[2](view(env_ids.to(torch.int64).contiguous()))
            return {}
        for term in self._terms.values():
            term.reset(env_ids)
        return {}
