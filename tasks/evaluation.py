"""What every task's evaluation settings share: final observations, no curriculum, and (nominal) no noise and no
domain randomization. A task's ``evaluation_mode`` adds its own (held-out goals, its episode)."""

from __future__ import annotations

from typing import Any

from roarm_lab.mdp.events import randomization_terms


def evaluation_settings(cfg: Any, randomize: bool) -> None:
    cfg.curriculum = None
    cfg.compute_final_obs = True
    if not randomize:
        cfg.observations.policy.enable_corruption = False
        for name in randomization_terms(cfg.events):
            setattr(cfg.events, name, None)
