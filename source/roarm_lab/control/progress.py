"""A training's progress as every face reads it: the run's own ``progress.jsonl`` (one JSON record per
iteration, written by the training loop), never a regex over console text.

A record holds ``iteration`` (rsl_rl's, from 0), ``wall_time_s`` since that training process started, and the
task's figures (``success_rate``, ``position_error_m``, ``mean_reward``). The file is read bounded from its end;
a line cut by the bound or by a writer mid-line is skipped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from roarm_lab.control.runfiles import read_tail

CURVE_BYTES = 2 * 1024 * 1024
STATUS_BYTES = 64 * 1024
CURVE_POINTS = 600
FIELDS = ("iteration", "wall_time_s", "success_rate", "position_error_m", "mean_reward")
RATE_WINDOW = 20


def records(path: Path, max_bytes: int = CURVE_BYTES) -> list[dict[str, Any]]:
    """The complete records in the last ``max_bytes`` of a progress file, in order."""
    text = read_tail(path, max_bytes)
    lines = text.split("\n")
    lines = lines[:-1]  # the last piece has no newline yet (or is empty)
    if len(text.encode()) >= max_bytes and lines:
        lines = lines[1:]  # the first line may be cut
    out = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("iteration"), int) and not isinstance(row["iteration"], bool):
            out.append({k: row.get(k) for k in FIELDS if _number(row.get(k))})
    return out


def latest(path: Path, total_iterations: int | None = None) -> dict[str, Any]:
    """The newest record as a status: iteration counted from 1, total, ETA from the recent rate; {} if none."""
    rows = records(path, STATUS_BYTES)
    if not rows:
        return {}
    last = rows[-1]
    out: dict[str, Any] = {**last, "iteration": last["iteration"] + 1, "total_iterations": total_iterations}
    recent = [r for r in rows[-RATE_WINDOW:] if "wall_time_s" in r]
    first = next((r for r in recent if r["wall_time_s"] <= last.get("wall_time_s", 0.0)
                  and r["iteration"] < last["iteration"]), None)
    if total_iterations and first is not None and "wall_time_s" in last:
        per_it = (last["wall_time_s"] - first["wall_time_s"]) / (last["iteration"] - first["iteration"])
        out["eta_s"] = round(max(0, total_iterations - out["iteration"]) * per_it)
    if total_iterations:
        out["fraction"] = round(min(1.0, out["iteration"] / total_iterations), 4)
    return out


def curve(path: Path, points: int = CURVE_POINTS) -> tuple[list[dict[str, Any]], int]:
    """At most ``points`` records evenly thinned (the newest always kept) and how many there are."""
    rows = records(path)
    every = max(1, math.ceil(len(rows) / points))
    thinned = rows[::every] + (rows[-1:] if rows and (len(rows) - 1) % every else [])
    return thinned, len(rows)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
