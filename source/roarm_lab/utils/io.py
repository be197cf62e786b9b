"""Atomic file writes: a reader (or a crash) never sees half a checkpoint, export or log; and a full disk told apart.

A full disk is an ``OSError`` with ``ENOSPC`` (or ``EDQUOT``, over quota) from ``write``/``fsync``/``close``; a
library that hides the errno (torch's file writer raises a bare ``RuntimeError``) is judged by the free space left.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
LOW_SPACE_BYTES = 1 << 20
"""An error without an errno counts as a full disk only while the folder has less than this left."""


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    return atomic_write(path, write)


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    return repr(value)


def append_text(path: str | Path, text: str) -> None:
    """Append ``text`` whole or not at all: a write that the disk cuts short is truncated back, so a reader of a
    JSON-lines file (``progress.jsonl``) never meets half a record, even after a full disk."""
    data = text.encode("utf-8")
    # never through a symbolic link: a planted link in a run folder must not make training write elsewhere
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0),
                 0o666)
    try:
        start = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(data):  # a short count means the disk filled mid-text; the next write says why
                written += os.write(fd, data[written:])
        except BaseException:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def free_space(folder: str | Path) -> tuple[int, int]:
    """Free and total bytes of the filesystem that holds ``folder`` (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    return usage.free, usage.total


def is_disk_full(err: BaseException, folder: str | Path) -> bool:
    """Whether ``err`` means the disk under ``folder`` is full: ``ENOSPC``/``EDQUOT`` on it or on an error that
    caused it; an ``OSError``/``RuntimeError`` without one only while under ``LOW_SPACE_BYTES`` are left there."""
    seen: BaseException | None = err
    for _ in range(16):  # a cause chain can loop
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in DISK_FULL_ERRNOS:
            return True
        seen = seen.__cause__ or seen.__context__
    if isinstance(err, OSError) and err.errno is not None:
        return False  # another errno: not a full disk, whatever the free space
    return isinstance(err, (OSError, RuntimeError)) and free_space(folder)[0] < LOW_SPACE_BYTES


def size_text(n: int) -> str:
    """Bytes for people: ``512 B``, ``38.1 KiB``, ``2.0 GiB``."""
    if n < 1024:
        return f"{n} B"
    value, units = n / 1024, ["KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and len(units) > 1:
        value, units = value / 1024, units[1:]
    return f"{value:.1f} {units[0]}"


@contextlib.contextmanager
def disk_full_reported_by_the_caller() -> Iterator[None]:
    """Keep writer threads that hit a full disk quiet (TensorBoard's prints its traceback): their writer raises the
    same error in the calling thread at its next write, which reports it. Other thread errors print as before."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in DISK_FULL_ERRNOS):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous
