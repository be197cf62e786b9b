"""Reading files that a hostile local user may have planted: bounded, regular files only, never blocking.

A FIFO, a device or ``/dev/zero`` behind a policy, calibration or targets path would otherwise block the
reader forever or fill memory. ``read_bounded`` opens without blocking (``O_NONBLOCK``), refuses anything
that is not a regular file, and reads at most ``max_bytes``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafeFileError(ValueError):
    """A file that is missing, not a regular file, or too large; the message names it and the fix."""


def read_bounded(path: str | Path, max_bytes: int, what: str = "file", follow_symlinks: bool = True) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else raises ``UnsafeFileError``."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UnsafeFileError(f"{what} {path} does not exist") from None
    except OSError as err:
        hint = " (a symbolic link is not accepted here)" if not follow_symlinks and os.path.islink(path) else ""
        raise UnsafeFileError(f"{what} {path} cannot be opened ({err.strerror}){hint}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(f"{what} {path} is not a regular file (a FIFO, device or folder): pass the file itself")
        if info.st_size > max_bytes:
            raise UnsafeFileError(f"{what} {path} has {info.st_size} bytes; the limit is {max_bytes}")
        chunks, total = [], 0
        while total <= max_bytes:  # the size can change after fstat: the cap holds on what is read
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise UnsafeFileError(f"{what} {path} grew past the limit of {max_bytes} bytes while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_bounded_text(path: str | Path, max_bytes: int, what: str = "file") -> str:
    data = read_bounded(path, max_bytes, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeFileError(f"{what} {path} is not UTF-8 text") from None


def inside(path: Path, root: Path) -> bool:
    """True if ``path`` (resolved, symlinks followed) lies in ``root`` (resolved)."""
    try:
        return path.resolve(strict=True).is_relative_to(root.resolve(strict=True))
    except (OSError, RuntimeError):
        return False
