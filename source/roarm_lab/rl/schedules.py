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


def entropy_hold(hold: Any) -> tuple[int, float] | None:
    """``[iteration, success]`` from the agent config, checked: a non-negative iteration, a success in (0, 1]."""
    if hold is None:
        return None
    try:
        iteration, success = hold
        pair = (int(iteration), float(success))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"agent.entropy_hold must be [iteration, success], got {hold!r}") from None
    if pair[0] < 0 or not 0.0 < pair[1] <= 1.0:
        raise ValueError(f"agent.entropy_hold needs an iteration >= 0 and a success in (0, 1], got {list(pair)}")
    return pair


class ScheduleClock:
    """The iteration the entropy schedule reads: it counts updates, but with a hold ``(at, success)`` it stops at
    ``at`` until a finished iteration's success rate reaches ``success``; from then on it runs again. A run that
    succeeds before ``at`` reads the schedule exactly as without the hold."""

    def __init__(self, start: int, hold: tuple[int, float] | None):
        self.value = start
        self.hold = hold
        self.opened = hold is None

    def advance(self, success: float | None) -> None:
        """One update done; ``success``: the latest finished iteration's success rate (None: none reported)."""
        if not self.opened and success is not None and success >= self.hold[1]:
            self.opened = True
        if self.opened or self.value < self.hold[0]:
            self.value += 1
