"""What a person asks of finished and running trainings: how long a new one will take on this machine, runs
side by side, their learning curves as a picture. Read from each run's own files (``run.json``,
``progress.jsonl``, ``metrics.json``), bounded."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from roarm_lab.control import progress
from roarm_lab.control.layout import ProjectPaths, RunFiles
from roarm_lab.control.runfiles import read_json

FALLBACK_S_PER_ENV_ITERATION = 1.16 / 1024
"""The reach default's measured training on a 2-core VM (300 iterations of 1024 x 32 in 349 s: 1.16 s per
iteration, docs/scaling.md): the estimate before any training has finished on this machine."""
MIN_MEASURED_ITERATIONS = 20


def training_rate(paths: ProjectPaths, task: str) -> tuple[float, str]:
    """Seconds per environment-iteration on this machine, from the newest finished run of ``task`` (and where
    the figure comes from)."""
    if paths.runs.is_dir():
        for record in sorted(paths.runs.glob("*/*/run.json"), key=lambda p: p.stat().st_mtime, reverse=True):
            info = read_json(record, "run record") or {}
            done = _int(info.get("iterations")) - _int(info.get("resumed_from"))
            envs, wall = _int(info.get("num_envs")), info.get("wall_time_s")
            if info.get("task") == task and done >= MIN_MEASURED_ITERATIONS and envs > 0 \
                    and isinstance(wall, (int, float)) and wall > 0:
                return wall / (done * envs), f"measured by run {record.parent.name} ({done} iterations x {envs} envs)"
    return FALLBACK_S_PER_ENV_ITERATION, "no finished run here yet: the default's 2-core figure (docs/scaling.md; docs/benchmarks.md splits it)"


def expected_minutes(paths: ProjectPaths, task: str, num_envs: int, iterations: int) -> tuple[float, str]:
    rate, basis = training_rate(paths, task)
    return round(rate * num_envs * iterations / 60.0, 1), basis


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def run_row(run_dir: Path) -> dict[str, Any]:
    """One run as a row of a comparison: its settings, how far it got, and what its policy reached."""
    files = RunFiles(run_dir)
    info = read_json(files.record, "run record") or {}
    last = progress.latest(files.progress)
    metrics = read_json(files.metrics(), "metrics") or {}
    randomized = read_json(files.metrics(True), "metrics") or {}
    return {
        "run_id": run_dir.name, "task": info.get("task"), "num_envs": info.get("num_envs"),
        "iterations": last.get("iteration") or info.get("iterations"), "minutes": _minutes(info, last),
        "train_success": _round(last.get("success_rate")), "train_error_cm": _cm(last.get("position_error_m")),
        "eval_success": _round(metrics.get("success_rate")), "eval_error_cm": _cm(metrics.get("mean_final_error_m")),
        "randomized_success": _round(randomized.get("success_rate")),
        "overrides": _overrides(info.get("overrides")),
    }


def _overrides(value: Any) -> list[str]:
    """A run's recorded overrides as a chat may see them: strings only, at most 20, each one line of 120."""
    if not isinstance(value, list):
        return []
    return [" ".join(v.split())[:120].replace("|", "/") for v in value if isinstance(v, str)][:20]


def _minutes(info: dict[str, Any], last: dict[str, Any]) -> float | None:
    wall = info.get("wall_time_s", last.get("wall_time_s"))
    return round(wall / 60.0, 1) if isinstance(wall, (int, float)) else None


def _round(v: Any) -> float | None:
    return round(float(v), 3) if isinstance(v, (int, float)) else None


def _cm(v: Any) -> float | None:
    return round(100 * float(v), 2) if isinstance(v, (int, float)) else None


COLUMNS = ("run_id", "iterations", "num_envs", "minutes", "train_success", "eval_success", "eval_error_cm",
           "randomized_success")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table of the columns a chat shows (overrides below it)."""
    def cell(v: Any) -> str:
        return "-" if v is None else str(v)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    lines += [f"{r['run_id']}: {', '.join(r['overrides'])}" for r in rows if r.get("overrides")]
    return "\n".join(lines)


def curves_png(runs: list[Path], title: str) -> bytes:
    """Success rate and hand error against wall-clock minutes, one line per run, as PNG bytes (the figure of
    ``scripts/plot_training.py``, from each run's bounded progress records)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from roarm_lab.rl.curves import draw_curves

    curves = []
    for run_dir in runs:
        rows = [r for r in progress.curve(RunFiles(run_dir).progress)[0] if "wall_time_s" in r]
        if rows:
            curves.append((run_dir.name, {k: np.array([r.get(k, np.nan) for r in rows], dtype=float)
                                          for k in ("wall_time_s", "success_rate", "position_error_m")}))
    if not curves:
        raise ValueError("none of these runs has progress records yet (progress.jsonl): wait for its first "
                         "iterations")
    fig = draw_curves(curves, title, size=(6.4, 5.2), xlabel="wall-clock minutes")
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=80)
    plt.close(fig)
    return out.getvalue()
