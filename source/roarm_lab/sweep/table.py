"""The table of a sweep's trials, the choice of the best and its overrides file, from the trials' own records."""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

import yaml

from roarm_lab.control.layout import SweepFiles
from roarm_lab.rl.progress_record import ERROR_RECORD, SUCCESS_RECORD
from roarm_lab.sweep.space import SweepSpace
from roarm_lab.utils.io import atomic_write_json, atomic_write_text

CLOCK = "env_steps"
"""What ASHA's time is and what the budget counts: samples, over all ranks."""
UNFINISHED = ("pending", "running", "paused", "interrupted")


_CROSSINGS: dict[tuple[str, float], int] = {}
"""Crossings found so far (a progress file only grows): the table is rewritten every few seconds."""


def samples_to_target(run_dir: str | None, target: float, per_iteration: float | None) -> int | None:
    """Samples until the run's training success rate first reached ``target`` (from its progress.jsonl)."""
    from roarm_lab.control.layout import RunFiles
    from roarm_lab.control.progress import records

    if not run_dir or not per_iteration:
        return None
    if (run_dir, target) in _CROSSINGS:
        return _CROSSINGS[(run_dir, target)]
    for record in records(RunFiles(Path(run_dir)).progress, max_bytes=16 * 1024 * 1024):
        if (record.get(SUCCESS_RECORD) or 0.0) >= target:
            found = _CROSSINGS[(run_dir, target)] = int(round((int(record.get("iteration", 0)) + 1) * per_iteration))
            return found
    return None


def trial_row(trial_id: str, status: str, config: dict[str, Any], last: dict[str, Any], space: SweepSpace,
              budget: int, error: str | None = None, stopped_early: bool = False,
              baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of the table: the trial's values, where it stands and what it reached. A trial that ended short of
    its budget without ASHA stopping it was interrupted (``--resume`` continues it)."""
    steps = last.get(CLOCK)
    iteration = last.get("iteration")
    per_iteration = steps / (iteration + 1) if steps and iteration is not None else None
    if error:
        state = "error"
    elif steps is not None and steps >= budget:
        state = "complete"
    elif stopped_early:
        state = "stopped early (ASHA)"
    elif status in ("PENDING", "RUNNING", "PAUSED"):
        state = status.lower()
    else:
        state = "interrupted"
    return {"trial": trial_id, "state": state, **{d.key: config.get(d.key) for d in space.dimensions},
            "baseline": baseline is not None and all(config.get(k) == v for k, v in baseline.items()),
            "success_rate": last.get(SUCCESS_RECORD), "error_m": last.get(ERROR_RECORD), "iterations":
            None if iteration is None else iteration + 1, "env_steps": steps,
            "samples_to_target": samples_to_target(last.get("run_dir"), space.target, per_iteration),
            "run_dir": last.get("run_dir"), "error": error}


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trial with the highest final success rate (to 0.01); among equals, the fewest samples to the target."""
    done = [r for r in rows if r["state"] in ("complete", "stopped early (ASHA)") and r["success_rate"] is not None]
    if not done:
        return None
    return min(done, key=lambda r: (-round(r["success_rate"], 2), r["samples_to_target"] or math.inf))


def fixed_values(fixed: list[str]) -> dict[str, Any]:
    """The sweep's fixed ``key=value`` overrides as a preset's entries (values read as YAML data, as the command line
    reads them; they passed the faces' rules before the sweep started). Other tokens (``presets=``) stay out."""
    values = {}
    for token in fixed:
        key, sep, raw = token.partition("=")
        if sep and key.startswith(("env.", "agent.")):
            values[key] = yaml.safe_load(raw)
    return values


def write_tables(files: SweepFiles, rows: list[dict[str, Any]], space: SweepSpace, task: str, fixed: list[str]) -> None:
    """trials.json / .csv / .md and the best trial's overrides, each written atomically."""
    atomic_write_json(files.trials_json, {"task": task, "target": space.target, "keys": [d.key for d in space.dimensions],
                                          "trials": rows, "updated": time.time()})
    columns = list(rows[0]) if rows else ["trial"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(files.trials_csv, text.getvalue())
    atomic_write_text(files.trials_md, markdown(rows, space))
    best = best_row(rows)
    if best is not None:
        values = {**fixed_values(fixed), **{d.key: best[d.key] for d in space.dimensions}}
        head = (f"# The best trial ({best['trial']}) of sweep {files.path.name} on {task}: training success "
                f"{best['success_rate']:.3f} after {best['env_steps']} samples"
                + (f", {space.target:g} first at {best['samples_to_target']}" if best["samples_to_target"] else "")
                + f".\n# python scripts/train.py --task {task} --preset {files.best_overrides}"
                + ("\n# (the sweep's fixed overrides are the first entries)" if fixed else "") + "\n")
        atomic_write_text(files.best_overrides, head + yaml.safe_dump(values, sort_keys=False))


def markdown(rows: list[dict[str, Any]], space: SweepSpace) -> str:
    short = {d.key: d.key.split(".")[-1] for d in space.dimensions}
    cols = ["trial", "state", *short, "success_rate", "error_m", "env_steps", "samples_to_target"]
    head = [short.get(c, c) for c in cols]

    def cell(v: Any) -> str:
        if v is None:
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) + (" (defaults)" if c == "trial" and r.get("baseline") else "")
                                for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
