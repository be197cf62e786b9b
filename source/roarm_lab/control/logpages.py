"""Logs a face may show, a page at a time: a job's output, a run's training console, the simulator's and the
gateway's service logs. Which file each name means is decided here (the layout), never by the caller; pages
count lines back from the end, so the newest lines come first and nothing past the bound is read."""

from __future__ import annotations

from pathlib import Path

from roarm_lab.control import rules
from roarm_lab.control.errors import ControlError
from roarm_lab.control.runfiles import read_tail

LOG_BYTES = 1024 * 1024
"""The end of a log that pages are cut from (older lines are not served)."""
MAX_LINE_CHARS = 300
NOISE = ("Storing git diff", "Actor MLP", "Critic MLP", "Sequential(", "Linear(in_features", "ELU(", "  )", ")")
"""rsl_rl's start-up print of the networks: shown in the file, skipped in a page."""


def page(path: Path, lines: int, before: int, what: str) -> dict:
    """``lines`` lines ending ``before`` lines from the end (0: the newest), and where the next older page ends."""
    rules.LOG_LINES.check("lines", lines)
    if not isinstance(before, int) or isinstance(before, bool) or before < 0:
        raise ControlError(f"before must be a whole number >= 0 (lines back from the end), got {before!r}")
    if not path.is_file():
        raise ControlError(f"{what} has no log yet ({path.name})")
    text = read_tail(path, LOG_BYTES)
    kept = [ln if len(ln) <= MAX_LINE_CHARS else ln[:MAX_LINE_CHARS] + " ..." for ln in text.splitlines()
            if ln.strip() and not ln.lstrip().startswith(NOISE)]
    end = max(0, len(kept) - before)
    start = max(0, end - lines)
    return {"log": what, "lines": kept[start:end], "first_line": start, "total_lines": len(kept),
            "older": (len(kept) - start) if start > 0 else None}
