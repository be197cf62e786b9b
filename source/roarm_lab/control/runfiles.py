"""Reading a run's or a job's own files, bounded and without blocking: JSON records, a log's tail, its error line."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from roarm_lab.utils.files import UnsafeFileError, read_bounded_text

MAX_JSON_BYTES = 4 * 1024 * 1024
TAIL_BYTES = 64 * 1024
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


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
    return [line.rstrip() for line in text.splitlines() if line.strip()][-count:] if count > 0 else []


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
