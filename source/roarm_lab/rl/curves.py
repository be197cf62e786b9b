"""Learning curves from a run's own files: success rate and the task's position error (its profile's) against wall-clock time.

A run writes ``progress.jsonl`` (one record per iteration, ``rl/progress.py``); runs from before that file
existed are read from rsl_rl's console report (``train_console.log``: iteration blocks with "Time elapsed").

    python scripts/plot_training.py RUN_DIR [RUN_DIR ...] --png docs/training_curves.png [--label NAME ...]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from roarm_lab.utils.figures import save_png
from roarm_lab.rl.progress_record import ERROR_RECORD, SUCCESS_RECORD
from roarm_lab.control.layout import PROGRESS_FILE, RunFiles

_BLOCK = re.compile(r"Learning iteration (\d+)/\d+")
_ELAPSED = re.compile(r"Time elapsed:\s+(?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")


# in rsl_rl's iteration reports: the task's success rate and its first ``*_error`` metric, whichever the command
_SUCCESS_METRIC = r"Metrics/[^/\s]+/success_rate"
_ERROR_METRIC = r"Metrics/[^/\s]+/[a-z_]*error"


def _number(pattern: str, block: str) -> float:
    found = re.search(pattern + r":\s+(-?[0-9.]+(?:e-?\d+)?)", block)
    return float(found.group(1)) if found else float("nan")


def load_curve(run_dir: Path) -> dict[str, np.ndarray]:
    """``{"wall_time_s", "iteration", SUCCESS_RECORD, ERROR_RECORD}`` arrays of one run."""
    records = run_dir / PROGRESS_FILE
    if records.is_file():
        rows = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
        return {k: np.array([r.get(k, np.nan) for r in rows], dtype=float)
                for k in ("wall_time_s", "iteration", SUCCESS_RECORD, ERROR_RECORD)}
    text = RunFiles(run_dir).console.read_text(errors="replace")
    starts = [m.start() for m in _BLOCK.finditer(text)] + [len(text)]
    rows = []
    for a, b in zip(starts, starts[1:]):
        block = text[a:b]
        elapsed = _ELAPSED.search(block)
        if elapsed:
            d, h, m, s = (int(g) if g else 0 for g in elapsed.groups())
            rows.append((((d * 24 + h) * 60 + m) * 60 + s, int(_BLOCK.match(block).group(1)),
                         _number(_SUCCESS_METRIC, block), _number(_ERROR_METRIC, block)))
    if not rows:
        raise ValueError(f"{run_dir} has neither {PROGRESS_FILE} nor iteration reports in train_console.log")
    t, it, success, error = map(np.array, zip(*rows))
    return {"wall_time_s": t.astype(float), "iteration": it.astype(float), SUCCESS_RECORD: success,
            ERROR_RECORD: error}


def plot_curves(runs: list[tuple[str, dict[str, np.ndarray]]], png: Path, title: str,
                target: float | None = None) -> Path:
    fig = draw_curves(runs, title, target=target)
    return save_png(fig, png)


def draw_curves(runs: list[tuple[str, dict[str, np.ndarray]]], title: str, size: tuple[float, float] = (7.5, 6),
                xlabel: str = "wall-clock minutes (2 CPU cores)", target: float | None = None) -> Any:
    """The figure: success rate (top, with a dashed ``target`` if given) and the task's position error (bottom, log
    scale) against wall-clock minutes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=size, sharex=True)
    for label, c in runs:
        minutes = c["wall_time_s"] / 60.0
        top.plot(minutes, c[SUCCESS_RECORD], label=label)
        bottom.plot(minutes, 100 * c[ERROR_RECORD], label=label)
    top.set_ylabel("success rate (training)")
    top.set_ylim(0, 1)
    if target is not None:
        top.axhline(target, color="k", linestyle="--", linewidth=0.8)
    bottom.set_ylabel("position error (cm)")
    bottom.set_yscale("log")
    bottom.set_xlabel(xlabel)
    top.legend(loc="lower right", fontsize=8)  # the curves rise from the lower left
    top.set_title(title)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", type=Path, nargs="+", help="run folders (logs/rsl_rl/<experiment>/<run>)")
    p.add_argument("--label", action="append", help="a legend label per run, in order")
    p.add_argument("--png", type=Path, default=Path("docs/training_curves.png"))
    p.add_argument("--title", default="training")
    p.add_argument("--target", type=float, help="a success rate to mark with a dashed line (e.g. the task's goal)")
    args = p.parse_args(argv)
    labels = args.label or [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        p.error(f"give one --label per run ({len(args.runs)} runs, {len(labels)} labels)")
    try:
        runs = [(label, load_curve(run)) for label, run in zip(labels, args.runs)]
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {plot_curves(runs, args.png, args.title, args.target)}")
    return 0
