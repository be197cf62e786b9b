"""Curriculum terms."""

from __future__ import annotations

from typing import Any


def modify_reward_weight(env: Any, env_ids: Any, term_name: str, weight: float, num_steps: int) -> float:
    """Set a reward term's weight once ``num_steps`` policy steps have passed (Isaac Lab's reach does this)."""
    term_cfg = env.reward_manager.get_term_cfg(term_name)
    if env.common_step_counter > num_steps and term_cfg.weight != weight:
        term_cfg.weight = weight
        env.reward_manager.set_term_cfg(term_name, term_cfg)
    return term_cfg.weight
