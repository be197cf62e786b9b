"""Reading a run's own files, bounded and without blocking: the console log's tail and progress, JSON records.

``train_console.log`` holds rsl_rl's per-iteration report (``Learning iteration i/N``, ``ETA: h:mm:ss``, the
episode metrics); ``run.json`` is written when training ends; ``exported/metrics*.json`` when play.py ends.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from roarm_lab.utils.files import UnsafeFileError, read_bounded_text
from roarm_lab.rl.progress_record import ERROR_KEY, SUCCESS_KEY

MAX_JSON_BYTES = 4 * 1024 * 1024
TAIL_BYTES = 64 * 1024
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
ITERATION = re.compile(r"Learning iteration (\d+)/(\d+)")
ETA = re.compile(r"ETA:\s+(?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")


def read_json(path: Path, what: str = "file") -> dict[str, Any] | None:
    """A JSON object from a regular file of bounded size; None if absent, unreadable or not an object."""
    if not path.is_file():
        return None
    try:
        data = json.loads(read_bounded_text(path, MAX_JSON_BYTES, what))
    except (UnsafeFileError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_tail(path: Path, max_bytes: int = TAIL_BYTES) -> str:
    """The last ``max_bytes`` of a regular file as text, ANSI codes removed; '' if absent or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return ""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return ""
        os.lseek(fd, max(0, info.st_size - max_bytes), os.SEEK_SET)
        data = os.read(fd, max_bytes)
    finally:
        os.close(fd)
    return ANSI.sub("", data.decode("utf-8", errors="replace"))


def last_lines(text: str, count: int) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()][-count:]


def training_progress(console: str) -> dict[str, Any]:
    """Iteration, total, ETA and the episode metrics of the newest report block of a console log."""
    matches = list(ITERATION.finditer(console))
    if not matches:
        return {}
    last = matches[-1]
    block = console[last.start():]
    it, total = int(last.group(1)), int(last.group(2))
    out: dict[str, Any] = {"iteration": it + 1, "total_iterations": total,
                           "fraction": round(min(1.0, (it + 1) / total), 4) if total else None}
    eta = ETA.search(block)
    if eta:
        days, h, m, s = (int(g) if g else 0 for g in eta.groups())
        out["eta_s"] = ((days * 24 + h) * 60 + m) * 60 + s
    for key, name in ((SUCCESS_KEY, "success_rate"), (ERROR_KEY, "position_error_m"), ("Mean reward", "mean_reward")):
        found = re.search(re.escape(key) + r":\s+(-?[0-9.]+(?:e-?\d+)?)", block)
        if found:
            out[name] = float(found.group(1))
    return out


def error_line(log: str) -> str | None:
    """What went wrong, from a job log: the scripts' ``error: ...`` line, else a traceback's last line."""
    lines = last_lines(log, 400)
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):]
    if any(line.startswith("Traceback") for line in lines):
        for line in reversed(lines):
            if re.match(r"^[A-Za-z_.]+(Error|Exception|Interrupt)\b", line):
                return line
    return None
