"""Start and stop jobs: a record on disk, then a supervisor in its own session that runs the command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from roarm_lab.jobs.store import ACTIVE, JobError, JobRecord, JobStore, new_job_id, pid_alive


def start_job(store: JobStore, kind: str, command: list[str], *, cwd: Path, task: str | None = None,
              params: dict[str, Any] | None = None, run_dir: Path | None = None, run_glob: str | None = None,
              job_id: str | None = None) -> JobRecord:
    """Write the record and start the supervisor; returns at once (the record says ``starting``)."""
    job_id = job_id or new_job_id(kind)
    store.root.mkdir(parents=True, exist_ok=True)
    record = JobRecord(id=job_id, kind=kind, command=list(command), cwd=str(cwd), log=str(store.root / f"{job_id}.log"),
                       task=task, params=dict(params or {}), run_dir=None if run_dir is None else str(run_dir),
                       run_glob=run_glob)
    path = store.save(record)
    with open(store.root / f"{job_id}.log", "ab") as log:  # the supervisor's own errors land in the job log
        proc = subprocess.Popen([sys.executable, "-m", "roarm_lab.jobs.supervise", "--record", str(path), "--",
                                 *command], stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=cwd,
                                start_new_session=True, close_fds=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})  # the log is read while it runs
    # reap the supervisor when it ends (no zombie while this process lives; the job does not depend on it)
    threading.Thread(target=proc.wait, name=f"reap-{job_id}", daemon=True).start()
    return record


def wait_started(store: JobStore, job_id: str, timeout_s: float = 10.0) -> JobRecord:
    """The record once the supervisor has written its pid (or the timeout passed)."""
    end = time.monotonic() + timeout_s
    record = store.load(job_id)
    while record.pid is None and time.monotonic() < end:
        time.sleep(0.05)
        record = store.load(job_id)
    return record


def stop_job(store: JobStore, job_id: str, signum: int = signal.SIGTERM, wait_s: float = 8.0) -> JobRecord:
    """SIGTERM to the supervisor (it stops the command and writes ``stopped``); an orphan's command directly."""
    record = store.load(job_id)
    state = store.state(record)
    if state not in (*ACTIVE, "orphaned"):
        raise JobError(f"job {job_id} is not running (it {state}); nothing to stop")
    if pid_alive(record.pid, record.pid_start):
        _kill(record.pid, signum)
    elif pid_alive(record.child_pid, record.child_start):
        _kill(record.child_pid, signum)  # the supervisor is gone: stop what it left running
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        record = store.load(job_id)
        if not pid_alive(record.pid, record.pid_start) and not pid_alive(record.child_pid, record.child_start):
            break
        time.sleep(0.1)
    return record


def signal_command(record: JobRecord, signum: int) -> bool:
    """Send a signal to the job's command itself (the real-arm bridge's SIGINT); True if it was running.

    The supervisor is told first (SIGUSR1) that the job is being stopped, so its record ends ``stopped``.
    """
    if not pid_alive(record.child_pid, record.child_start):
        return False
    if pid_alive(record.pid, record.pid_start):
        _kill(record.pid, signal.SIGUSR1)
    return _kill(record.child_pid, signum)


def _kill(pid: int, signum: int) -> bool:
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False
