"""A running bridge says so beside its stop file (``<stop file's folder>/bridges/<pid>.json``: pid and start time),
so that an emergency stop pressed on a face that does not drive the arm itself (a simulation-only MCP server or
panel) still latches the stop file while someone runs ``run_real.py`` by hand. A file whose process is gone (or
is another process now) does not count, so a bridge killed with -9 leaves nothing that matters."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

MAX_FILE_BYTES = 4096


def folder(stop_file: Path) -> Path:
    return Path(stop_file).parent / "bridges"


@contextlib.contextmanager
def announced(stop_file: Path | None) -> Iterator[None]:
    """While the block runs, this process is a live bridge for ``stop_file``."""
    if stop_file is None:
        yield
        return
    from roarm_lab.control.process import start_ticks
    from roarm_lab.utils.io import atomic_write_json

    mine = folder(stop_file) / f"{os.getpid()}.json"
    atomic_write_json(mine, {"pid": os.getpid(), "start_ticks": start_ticks(os.getpid())})
    try:
        yield
    finally:
        mine.unlink(missing_ok=True)


def live_bridges(stop_file: Path) -> list[int]:
    """The pids of bridges running now for ``stop_file`` (their files checked: data anyone may have written)."""
    from roarm_lab.control.process import running

    live = []
    where = folder(stop_file)
    for path in sorted(where.glob("*.json")) if where.is_dir() else []:
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_FILE_BYTES:
                continue
            record = json.loads(path.read_text())
            pid, ticks = record.get("pid"), record.get("start_ticks")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(pid, int) and isinstance(ticks, int) and path.stem == str(pid) and running(pid, ticks):
            live.append(pid)
    return live
