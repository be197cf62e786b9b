"""Schedules of PPO settings over training iterations, as data in the agent config (rsl_rl keeps them constant)."""

from __future__ import annotations

from typing import Any


def entropy_schedule(points: Any) -> list[tuple[int, float]] | None:
    """``[[iteration, coefficient], ...]`` from the agent config, checked: iterations increasing, coefficients
    finite and not negative. ``None`` keeps rsl_rl's constant ``algorithm.entropy_coef``."""
    if points is None:
        return None
    try:
        pairs = [(int(i), float(c)) for i, c in points]
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"agent.entropy_schedule must be a list of [iteration, coefficient] pairs, got {points!r}")
    iterations = [i for i, _ in pairs]
    if not pairs or iterations != sorted(set(iterations)) or iterations[0] < 0:
        raise ValueError(f"agent.entropy_schedule needs increasing iterations from 0 up, got {iterations}")
    if any(not (0.0 <= c < 1.0) for _, c in pairs):
        raise ValueError(f"agent.entropy_schedule's coefficients must lie in [0, 1), got {[c for _, c in pairs]}")
    return pairs


def entropy_at(schedule: list[tuple[int, float]], iteration: int) -> float:
    """The coefficient at ``iteration``: linear between the schedule's points, constant before and after them."""
    if iteration <= schedule[0][0]:
        return schedule[0][1]
    for (i0, c0), (i1, c1) in zip(schedule, schedule[1:]):
        if iteration <= i1:
            return c0 + (c1 - c0) * (iteration - i0) / (i1 - i0)
    return schedule[-1][1]
