"""Jobs: training, evaluation, export and real-arm runs that outlive the face that started them.

A job is a record on disk (``logs/jobs/<id>.json``, written atomically) and a supervisor process
(``roarm_lab.control.supervise``) that runs the command and writes the record from then on. The core writes a
record once, before it starts the supervisor, and again only to settle a job whose supervisor is gone.

A record is data anyone who can write the jobs folder may have edited, so it is checked before use: its id and
kind, the types of its fields, and its run folder, which must resolve inside the runs folder (the real arm's
folder for a real-arm run). Its log is derived from its id, never read from it. Its pids are only believed when
the process is still the one the core started (``control.process``). A job whose supervisor is gone without
writing the end is settled as ``lost`` with the reason, the first time anyone looks.

How many jobs of each kind may run at once is a rule (``control.rules.JOB_LIMITS``); it is checked and the new
record written under one lock shared by every face and process, and it counts a lost job whose command still
runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from roarm_lab.control.errors import LimitError
from roarm_lab.control.layout import PathError, ProjectPaths, served
from roarm_lab.control.process import JOB_ENV, exit_words, is_job_process, running, signal_job_process
from roarm_lab.utils.io import atomic_write_json

KINDS = ("train", "evaluate", "export", "real", "sweep")
JOB_ID = re.compile(r"^(train|evaluate|export|real|sweep)-\d{8}-\d{6}-[0-9a-f]{4}$")
ACTIVE = ("starting", "running")
FINAL = ("succeeded", "failed", "stopped", "lost")
STATES = (*ACTIVE, *FINAL)
MAX_RECORD_BYTES = 256 * 1024
START_GRACE_S = 30.0
"""A record may say ``starting`` without a pid this long (the supervisor has not written it yet)."""
UNKNOWN_END = "ended without recording how the job ended (killed, or the machine restarted)"
START_LOCK_WAIT_S = 2.0
"""How long a start waits for another start (in any process) before it says so; never longer."""


class JobError(ValueError):
    """An unknown, malformed or unreadable job, or one that cannot be stopped; the message says what to do."""


class JobLimitError(LimitError):
    """One job too many of a kind; ``running`` holds the ids of the jobs that count."""

    def __init__(self, message: str, running: list[str]):
        super().__init__(message)
        self.running = running


@dataclass
class JobRecord:
    id: str
    kind: str
    command: list[str]
    cwd: str
    state: str = "starting"
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    """The supervisor (leader of the job's own session)."""
    pid_start: int | None = None
    """The supervisor's start time in clock ticks since boot."""
    child_pid: int | None = None
    """The command itself."""
    child_start: int | None = None
    exit_code: int | None = None
    run_dir: str | None = None
    """The run folder (evaluation, export, real arm); a training's is found from ``params`` once train.py made it."""
    task: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "kind": (str,), "command": (list,), "cwd": (str,), "state": (str,), "created": (int, float),
    "started": (int, float, type(None)), "ended": (int, float, type(None)), "pid": (int, type(None)),
    "pid_start": (int, type(None)), "child_pid": (int, type(None)), "child_start": (int, type(None)),
    "exit_code": (int, type(None)), "run_dir": (str, type(None)), "task": (str, type(None)), "params": (dict,),
    "error": (str, type(None)),
}


def new_job_id(kind: str) -> str:
    if kind not in KINDS:
        raise JobError(f"unknown job kind '{kind}'; kinds: {list(KINDS)}")
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class JobStore:
    def __init__(self, paths: ProjectPaths):
        self.paths = paths
        self.root = paths.jobs

    @classmethod
    def at(cls, logs: Path) -> "JobStore":
        """The store of a logs folder (``<logs>/jobs``)."""
        return cls(ProjectPaths.at(None, logs))

    # ------------------------------------------------------------------ records
    def path(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise JobError(f"'{job_id}' is not a job id (they look like train-20260101-120000-ab12); list_runs shows "
                           "the runs and their jobs")
        return self.paths.job_record(job_id)

    def log(self, record: JobRecord) -> Path:
        return self.paths.job_log(record.id)

    def save(self, record: JobRecord) -> Path:
        return atomic_write_json(self.path(record.id), record.to_json())

    def load(self, job_id: str) -> JobRecord:
        """The checked record, settled (``lost``) if its supervisor is gone without writing the end."""
        path = self.path(job_id)
        if not path.is_file():
            raise JobError(f"no job '{job_id}' in {self.root}; list_runs shows the known runs and jobs")
        return self.settle(self.read(path))

    def all(self) -> list[JobRecord]:
        """Every readable, valid record, oldest first (a malformed or tampered one is left out)."""
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.glob("*.json")):
            if JOB_ID.match(path.stem):
                try:
                    out.append(self.settle(self.read(path)))
                except JobError:
                    continue
        return sorted(out, key=lambda r: r.created)

    def read(self, path: Path) -> JobRecord:
        from roarm_lab.utils.files import UnsafeFileError, read_bounded_text

        try:
            data = json.loads(read_bounded_text(path, MAX_RECORD_BYTES, "job record"))
        except (UnsafeFileError, json.JSONDecodeError) as err:
            raise JobError(f"job record {path} is unreadable ({err}); delete it or start the job again") from None
        return self._checked(data, path)

    def _checked(self, data: Any, path: Path) -> JobRecord:
        def bad(why: str) -> JobError:
            return JobError(f"job record {path} is not one the control plane wrote ({why}); it is ignored: delete it")

        if not isinstance(data, dict):
            raise bad("not a JSON object")
        known = {k: data[k] for k in _TYPES if k in data}
        for key, types in _TYPES.items():
            if key in known and (not isinstance(known[key], types) or isinstance(known[key], bool)):
                raise bad(f"'{key}' is {type(known[key]).__name__}")
        if known.get("id") != path.stem or known.get("kind") != path.stem.split("-", 1)[0]:
            raise bad("its id or kind differs from its file name")
        if known.get("state", "starting") not in STATES:
            raise bad(f"unknown state {known.get('state')!r}")
        if not all(isinstance(c, str) for c in known.get("command", [])):
            raise bad("'command' is not a list of strings")
        try:
            record = JobRecord(**known)
        except TypeError as err:
            raise bad(str(err)) from None
        if record.run_dir is not None:
            root = self.paths.real if record.kind == "real" else self.paths.runs
            try:
                record.run_dir = str(served(Path(record.run_dir), root, "its run folder"))
            except PathError as err:
                raise bad(str(err)) from None
        return record

    # ------------------------------------------------------------------ state
    def supervisor_alive(self, record: JobRecord) -> bool:
        return is_job_process(record.pid, record.pid_start, record.id)

    def command_alive(self, record: JobRecord) -> bool:
        return is_job_process(record.child_pid, record.child_start, record.id)

    def settle(self, record: JobRecord, reason: str | None = None) -> JobRecord:
        """Mark an active job ``lost`` (persisted) when its supervisor is gone; the record unchanged otherwise.

        ``reason`` is how the supervisor ended, known only to the process that started it (its reaper); it replaces
        the generic words of a reader that settled the job first. Settling happens under a lock, so neither
        overwrites the other."""
        if record.state in ACTIVE:
            if self.supervisor_alive(record):
                return record
            if record.pid is None and reason is None and time.time() - record.created < START_GRACE_S:
                return record  # the supervisor has not written its pid yet
        elif not (record.state == "lost" and reason and UNKNOWN_END in (record.error or "")):
            return record
        with self._lock(".settle.lock", "a job record is being settled right now; try again"):
            fresh = self.read(self.path(record.id))  # the supervisor's last write, or another settler's
            if fresh.state in ACTIVE:
                who = "its supervisor" + (f" (pid {fresh.pid})" if fresh.pid else "")
                why = reason or (f"{who} {UNKNOWN_END}" if fresh.pid else f"{who} never started")
                fresh.state, fresh.ended = "lost", fresh.ended or time.time()
                fresh.error = why if not fresh.error else f"{why}; {fresh.error}"
                self.save(fresh)
            elif fresh.state == "lost" and reason and UNKNOWN_END in (fresh.error or ""):
                fresh.error = reason + fresh.error.split(UNKNOWN_END, 1)[1]
                self.save(fresh)
            return fresh

    def counts_as_running(self, record: JobRecord) -> bool:
        """For the job limits: active, or lost while its command still runs."""
        return record.state in ACTIVE or (record.state == "lost" and self.command_alive(record))

    # ------------------------------------------------------------------ start, stop
    def start_lock(self) -> contextlib.AbstractContextManager[None]:
        """One start at a time across threads, faces and processes; gives up after ``START_LOCK_WAIT_S``."""
        return self._lock(".start.lock", "another job is being started right now; try again in a few seconds")

    @contextlib.contextmanager
    def _lock(self, name: str, busy: str) -> Iterator[None]:
        """An exclusive lock file in the jobs folder, waited for at most ``START_LOCK_WAIT_S`` (then JobError)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / name, "a") as handle:
            end = time.monotonic() + START_LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > end:
                        raise JobError(busy) from None
                    time.sleep(0.02)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def start(self, kind: str, command: list[str], *, cwd: Path, task: str | None = None,
              params: dict[str, Any] | None = None, run_dir: Path | None = None, job_id: str | None = None) -> JobRecord:
        """Check the job limits, write the record and start the supervisor; returns at once (``starting``)."""
        from roarm_lab.control.rules import check_job_limit

        job_id = job_id or new_job_id(kind)
        with self.start_lock():
            check_job_limit(kind, run_dir, [j for j in self.all() if self.counts_as_running(j)])
            record = JobRecord(id=job_id, kind=kind, command=list(command), cwd=str(cwd), task=task,
                               params=dict(params or {}), run_dir=None if run_dir is None else str(run_dir))
            path = self.save(record)
            with open(self.log(record), "ab") as log:  # the supervisor's own errors land in the job log
                proc = subprocess.Popen([sys.executable, "-m", "roarm_lab.control.supervise", "--record", str(path),
                                         "--", *command], stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=cwd,
                                        start_new_session=True, close_fds=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", JOB_ENV: job_id})
        # reap the supervisor when it ends; if it ends without writing the job's end, say how it ended
        threading.Thread(target=self._reap, args=(job_id, proc), name=f"reap-{job_id}", daemon=True).start()
        return record

    def _reap(self, job_id: str, proc: subprocess.Popen) -> None:
        code = proc.wait()
        if code != 0:  # the supervisor itself exits 0 once it has recorded the end
            with contextlib.suppress(JobError, OSError):
                self.settle(self.read(self.path(job_id)), reason=f"its supervisor (pid {proc.pid}) was "
                                                                 f"{exit_words(code)} before it recorded the job's end")

    def wait_started(self, job_id: str, timeout_s: float = 10.0) -> JobRecord:
        """The record once the supervisor has written its pid (or the timeout passed)."""
        end = time.monotonic() + timeout_s
        record = self.load(job_id)
        while record.pid is None and record.state == "starting" and time.monotonic() < end:
            time.sleep(0.05)
            record = self.load(job_id)
        return record

    def wait(self, job_id: str, states: tuple[str, ...] = FINAL, timeout_s: float = 60.0) -> JobRecord:
        """The record once its state is one of ``states``; JobError naming the state it stayed in after the timeout."""
        end = time.monotonic() + timeout_s
        while True:
            record = self.load(job_id)
            if record.state in states:
                return record
            if time.monotonic() > end:
                raise JobError(f"job {job_id} is still {record.state} after {timeout_s:.0f} s")
            time.sleep(0.05)

    def stop(self, job_id: str, signum: int = signal.SIGTERM, wait_s: float = 8.0) -> JobRecord:
        """SIGTERM to the supervisor (it stops the command and records ``stopped``); a lost job's command directly."""
        record = self.load(job_id)
        if record.pid is None and record.state == "starting":  # just started: its supervisor has no pid on record yet
            record = self.wait_started(job_id)
        if not self.counts_as_running(record):
            raise JobError(f"job {job_id} is not running (it {record.state}); nothing to stop")
        if not (signal_job_process(record.pid, record.pid_start, record.id, signum)
                or signal_job_process(record.child_pid, record.child_start, record.id, signum)):
            return self.load(job_id)  # it ended meanwhile
        end = time.monotonic() + wait_s  # an exiting process loses its environment before it is gone: ticks only
        while time.monotonic() < end and (running(record.pid, record.pid_start)
                                          or running(record.child_pid, record.child_start)):
            time.sleep(0.05)
        return self.load(job_id)

    def signal_command(self, record: JobRecord, signum: int) -> bool:
        """Signal the job's command itself (the real-arm bridge's SIGINT); True if it was running and ours.

        The supervisor is told first (SIGUSR1) that the job is being stopped its own way, so it records ``stopped``.
        """
        if not self.command_alive(record):
            return False
        signal_job_process(record.pid, record.pid_start, record.id, signal.SIGUSR1)
        return signal_job_process(record.child_pid, record.child_start, record.id, signum)
