"""Process control: a pid is signalled only while it is still the process the core started.

A job record on disk can be edited by anyone who can write the jobs folder, so a pid in it proves nothing. The
core starts every job's supervisor with ``ROARM_JOB_ID=<job id>`` in its environment, and the supervisor's
command inherits it. A process is a job's own when it exists, is not a zombie, started at the recorded time
(clock ticks since boot: a reused pid has another) and carries that marker in ``/proc/<pid>/environ``, which
the kernel fixes at exec and only the process's owner can read. The check and the signal go through one pidfd,
so the pid cannot be reused between them.

Linux only (``/proc`` and pidfds); elsewhere no process is recognised and nothing is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Iterator

JOB_ENV = "ROARM_JOB_ID"
MAX_ENVIRON_BYTES = 1 << 20


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time since boot), or None if there is no such process."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3, the state, first)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    return stat[stat.rindex(")") + 2:].split()


def running(pid: int | None, ticks: int | None = None) -> bool:
    """The process exists, is not a zombie and (if ``ticks`` is given) is the one that started then."""
    if not pid or pid <= 0:
        return False
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return ticks is None or start_ticks(pid) == ticks


def carries(pid: int, job_id: str) -> bool:
    """The process's environment (as exec'd) has ``ROARM_JOB_ID=job_id``; False if it cannot be read."""
    try:
        with open(f"/proc/{int(pid)}/environ", "rb") as handle:
            environ = handle.read(MAX_ENVIRON_BYTES)
    except (OSError, ValueError):
        return False
    return f"{JOB_ENV}={job_id}".encode() in environ.split(b"\0")


def is_job_process(pid: int | None, ticks: int | None, job_id: str) -> bool:
    """``pid`` is, right now, the process the core started for ``job_id`` (see the module docstring)."""
    return bool(pid) and ticks is not None and running(pid, ticks) and carries(pid, job_id)


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[int | None]:
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def signal_job_process(pid: int | None, ticks: int | None, job_id: str, signum: int) -> bool:
    """Send ``signum`` if ``pid`` is the job's own process (checked through a pidfd held across the signal)."""
    if not pid or ticks is None:
        return False
    with _pidfd(pid) as fd:
        if fd is None or not is_job_process(pid, ticks, job_id):
            return False
        try:
            signal.pidfd_send_signal(fd, signum)
        except ProcessLookupError:
            return False
    return True


def exit_words(code: int | None) -> str:
    """An exit status as a person reads it: 'exit code 1', 'killed by SIGKILL'."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
