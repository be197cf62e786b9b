"""Fused form of reach's target command (``mdp.commands.ReachableTargetCommand``) with uniform target draws.

Per step the command refreshes its error metric, counts its timers down and, where a timer ran out, scores the
ending target segment and draws the next target; at a reset it scores the episode's last segment, logs the means
of its metrics and draws anew. The arithmetic runs in two compiled loops (the metric and timers; the scoring and
the reset's bookkeeping) over the term's own buffers; the random draws are the term's own calls, in its order
(the timers' ``uniform_``, then ``_draw``), so the stream and the targets are the readable path's. The failure-
weighted sampler (``failure_weighted_fraction`` > 0) keeps the readable path: it is a training option, off by
default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from roarm_lab.embedded.managers.fused import view
from roarm_lab.mdp import commands
from roarm_lab.mdp.fused.common import command_error
from roarm_lab.utils.jit import entry, kernel


@kernel
def _metric_and_timers(cmd, body_pos, root, body, error, time_left, dt, due):  # pragma: no cover - compiled
    """``_update_metrics`` (the hand's distance to its target), then ``time_left -= dt``; the ids whose timer ran
    out go to ``due``; returns their count."""
    count = 0
    for e in range(error.shape[0]):
        error[e] = command_error(cmd, body_pos, root, e, body)
        time_left[e] = time_left[e] - dt
        if time_left[e] <= 0:
            due[count] = e
            count += 1
    return count


@kernel
def _score(ids, counter, error, segments, success_rate, threshold):  # pragma: no cover - compiled
    """``ReachableTargetCommand._score_segments`` (uniform sampler): the ending segments of ``ids`` with a target."""
    for r in range(ids.shape[0]):
        e = ids[r]
        if counter[e] > 0:
            segments[0, e] += np.float32(1.0)
            segments[1, e] += np.float32(1.0) if error[e] < threshold else np.float32(0.0)
            success_rate[e] = segments[1, e] / segments[0, e]


@kernel
def _reset(ids, counter, error, segments, success_rate, threshold, means):  # pragma: no cover - compiled
    """The reset's bookkeeping: score the last segment, the metrics' means over ``ids`` (``means``: error, success
    rate), then zero the metrics, the counters and the segments of ``ids``."""
    _score(ids, counter, error, segments, success_rate, threshold)
    means[0] = 0.0
    means[1] = 0.0
    for r in range(ids.shape[0]):
        e = ids[r]
        means[0] += error[e]
        means[1] += success_rate[e]
    means[0] /= ids.shape[0]
    means[1] /= ids.shape[0]
    for r in range(ids.shape[0]):
        e = ids[r]
        error[e] = 0.0
        success_rate[e] = 0.0
        counter[e] = 0
        segments[0, e] = 0.0
        segments[1, e] = 0.0


_metric_and_timers_call, _score_call, _reset_call = entry(_metric_and_timers), entry(_score), entry(_reset)
"""Called from Python: compiled through ``utils.jit``'s cache (``_reset`` calls ``_score`` inside)."""


class FusedReachCommand:
    """``compute`` and ``reset`` of one ``ReachableTargetCommand``, on its buffers."""

    def __init__(self, term: Any):
        self._term = term
        self._threshold = np.float32(term.cfg.success_threshold_m)
        self._error = view(term.metrics["position_error"])
        self._success = view(term.metrics["success_rate"])
        self._counter = view(term.command_counter)
        self._segments = view(term._segments)
        self._due = np.empty(term.num_envs, dtype=np.int64)
        self._means = np.zeros(2, dtype=np.float64)
        data = term.robot.data
        self._metric_args = (view(term.pos_command_b), view(data.body_pos_w.torch), view(data.root_pos_w.torch),
                             int(term.body_idx), self._error, view(term.time_left))

    def _draw_targets(self, ids: torch.Tensor) -> None:
        """``CommandTerm._resample`` and ``_resample_command`` less the scoring: the same draws in the same order."""
        term = self._term
        lo, hi = term.cfg.resampling_time_range
        term.time_left[ids] = term.time_left[ids].uniform_(lo, hi)
        term.pos_command_b[ids] = term.bank[term._draw(len(ids))]
        term.command_counter[ids] += 1

    def compute(self, dt: float) -> None:
        count = _metric_and_timers_call(*self._metric_args, np.float32(dt), self._due)
        if count:
            due = self._due[:count]
            _score_call(due, self._counter, self._error, self._segments, self._success, self._threshold)
            self._draw_targets(torch.from_numpy(due.copy()))

    def reset(self, env_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        ids = env_ids.to(torch.int64).contiguous()
        _reset_call(view(ids), self._counter, self._error, self._segments, self._success, self._threshold, self._means)
        self._draw_targets(ids)
        return {"position_error": torch.tensor(self._means[0], dtype=torch.float32),
                "success_rate": torch.tensor(self._means[1], dtype=torch.float32)}


def bind_command(env: Any, term: Any) -> FusedReachCommand | None:
    """The term's fused form, or None (the readable path): another kind of command, or the weighted sampler."""
    if type(term) is not commands.ReachableTargetCommand or term._weighted > 0.0:
        return None
    return FusedReachCommand(term)
