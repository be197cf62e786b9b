"""Latency statistics (all requests and a sliding window), error counts, per-client counters, SLA alerts."""

from __future__ import annotations

import bisect
import itertools
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

PERCENTILES = (50, 90, 95, 99)
CLIENT_WINDOW = 100
STATS_CLIENTS = 32
"""A stats reply lists at most this many sessions (the most recently active): its size stays bounded."""
# all-time histogram: log-spaced bins from 1 us to 100 s (about 2 % wide)
_EDGES = np.logspace(0, 8, 801)
_EDGE_LIST = _EDGES.tolist()  # bisect on a list: ~20x faster than numpy for one value


class LatencyStats:
    """Percentiles of one latency (microseconds) over all samples (histogram) and the last ``window``."""

    def __init__(self, window: int = 1000):
        self.counts = [0] * (len(_EDGES) + 1)  # a list: one increment per request, cheaper than numpy's
        self.recent: deque[float] = deque(maxlen=window)
        self.total = 0

    def add(self, micros: float) -> int:
        """Count one sample; its histogram bin (the interval record reuses it: one search per request)."""
        index = bisect.bisect_left(_EDGE_LIST, micros)
        self.counts[index] += 1
        self.recent.append(micros)
        self.total += 1
        return index

    def all_time(self) -> dict[str, float]:
        return histogram_percentiles(0, self.counts)

    def window(self) -> dict[str, float]:
        if not self.recent:
            return {}
        values = np.percentile(np.fromiter(self.recent, float), PERCENTILES)
        return {f"p{p}": float(v) for p, v in zip(PERCENTILES, values)}

    def reset(self) -> None:
        self.recent.clear()


class IntervalLatency:
    """Total latencies since the last ``take``: the event log's periodic ``latency`` record.

    A sparse histogram (the all-time bins, about 2 % wide) instead of the samples, so a record stays small at
    any rate and ``roarm-gateway analyze`` can merge records into windows of any length exactly.
    """

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.requests = 0
        self.misses = 0
        self.max_us = 0.0

    def add(self, micros: float, missed: bool, index: int) -> None:
        """One reply of ``micros`` in histogram bin ``index`` (``LatencyStats.add``'s)."""
        self.counts[index] = self.counts.get(index, 0) + 1
        self.requests += 1
        self.misses += missed
        self.max_us = max(self.max_us, micros)

    def take(self) -> dict[str, Any] | None:
        """The record of the interval (None if no request finished in it), and a fresh interval."""
        if not self.requests:
            return None
        first, last = min(self.counts), max(self.counts)
        counts = [self.counts.get(i, 0) for i in range(first, last + 1)]
        pct = histogram_percentiles(first, counts)
        record = {"requests": self.requests, "misses": self.misses, **{f"{k}_us": v for k, v in pct.items()},
                  "max_us": self.max_us, "hist": {"first": first, "counts": counts}}
        self.counts, self.requests, self.misses, self.max_us = {}, 0, 0, 0.0
        return record


def histogram_percentiles(first: int, counts: list[int]) -> dict[str, float]:
    """p50/p90/p95/p99 (the upper edge of the bin they fall in) of a dense run of bins from ``first``."""
    total = sum(counts)
    if total <= 0:
        return {}
    cum = np.cumsum(counts)
    out = {}
    for p in PERCENTILES:
        idx = first + int(np.searchsorted(cum, p / 100.0 * total))
        out[f"p{p}"] = float(_EDGES[min(idx, len(_EDGES) - 1)])
    return out


HIST_BINS = len(_EDGES) + 1
"""Bins of a latency histogram (``IntervalLatency``'s ``hist``): ``analyze`` refuses indexes outside them."""


@dataclass
class ClientStats:
    """One session's counters and its last ``CLIENT_WINDOW`` latencies (no all-time histogram: 6 kB each)."""

    requests: int = 0
    errors: int = 0
    deadline_misses: int = 0
    hash_mismatches: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=CLIENT_WINDOW))

    def window(self) -> dict[str, float]:
        if not self.recent:
            return {}
        values = np.percentile(np.fromiter(self.recent, float), PERCENTILES)
        return {f"p{p}": float(v) for p, v in zip(PERCENTILES, values)}


def client_entry(name: str, c: ClientStats) -> dict[str, Any]:
    return {"name": name, "requests": c.requests, "errors": c.errors, "deadline_misses": c.deadline_misses,
            "hash_mismatches": c.hash_mismatches, "total_us": c.window()}


class GatewayStats:
    def __init__(self, window: int = 1000):
        self.queue = LatencyStats(window)
        self.inference = LatencyStats(window)
        self.total = LatencyStats(window)
        self.errors: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.infers = 0
        self.deadline_misses = 0
        self.late_results = 0
        self.recent_misses: deque[bool] = deque(maxlen=window)
        self.sessions = 0
        self.started = time.time()
        self.interval = IntervalLatency()

    def record_infer(self, client: ClientStats | None, queue_us: float, inference_us: float, total_us: float,
                     missed: bool) -> None:
        self.infers += 1
        self.queue.add(queue_us)
        if not missed:
            self.inference.add(inference_us)
        self.interval.add(total_us, missed, self.total.add(total_us))
        self.recent_misses.append(missed)
        if missed:
            self.deadline_misses += 1
        if client is not None:
            client.requests += 1
            client.recent.append(total_us)
            client.deadline_misses += missed

    def window_miss_rate(self) -> float:
        return sum(self.recent_misses) / len(self.recent_misses) if self.recent_misses else 0.0

    def snapshot(self, clients: Iterable[tuple[str, str, ClientStats]] = ()) -> dict[str, Any]:
        """Everything as plain data; ``clients``: (label, name, stats) of the sessions to list (at most 32)."""
        return {
            "uptime_s": time.time() - self.started,
            "requests": dict(self.requests),
            "infers": self.infers,
            "deadline_misses": self.deadline_misses,
            "deadline_miss_rate": self.deadline_misses / self.infers if self.infers else 0.0,
            "window_deadline_miss_rate": self.window_miss_rate(),
            "late_results_dropped": self.late_results,
            "errors": dict(self.errors),
            "latency_us": {name: {"all": s.all_time(), "window": s.window()}
                           for name, s in (("queue", self.queue), ("inference", self.inference), ("total", self.total))},
            "sessions": self.sessions,
            "clients": {label: client_entry(name, c) for label, name, c in itertools.islice(clients, STATS_CLIENTS)},
        }


class SlaMonitor:
    """Raises an alert when the window's p95 total latency or miss rate is over its threshold; then waits."""

    def __init__(self, p95_us: float, miss_rate: float, cooldown_s: float, min_samples: int = 50):
        self.p95_us = p95_us
        self.miss_rate = miss_rate
        self.cooldown_s = cooldown_s
        self.min_samples = min_samples
        self._last = -float("inf")

    def check(self, stats: GatewayStats, now: float | None = None) -> dict[str, Any] | None:
        now = time.monotonic() if now is None else now
        if now - self._last < self.cooldown_s or len(stats.total.recent) < self.min_samples:
            return None
        p95 = stats.total.window().get("p95", 0.0)
        miss = stats.window_miss_rate()
        reasons = []
        if p95 > self.p95_us:
            reasons.append(f"p95 total latency {p95:.0f} us > {self.p95_us:.0f} us")
        if miss > self.miss_rate:
            reasons.append(f"deadline miss rate {miss:.3f} > {self.miss_rate:.3f}")
        if not reasons:
            return None
        self._last = now
        return {"p95_us": p95, "miss_rate": miss, "reasons": reasons}
