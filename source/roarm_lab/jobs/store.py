"""Job records on disk: ``logs/jobs/<id>.json``, written atomically, read by whoever asks.

The MCP server writes a record once, before it starts the job's supervisor; from then on only the supervisor
(``roarm_lab.jobs.supervise``) writes it (its pid, the command's pid, running, the end and exit code), so
there is one writer and a record survives a restart of the MCP server. A record that says the job is running
while its supervisor is gone is *orphaned*: the supervisor was killed before it could write the end.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from roarm_lab.utils.io import atomic_write_json

KINDS = ("train", "evaluate", "export", "real")
JOB_ID = re.compile(r"^(train|evaluate|export|real)-\d{8}-\d{6}-[0-9a-f]{4}$")
ACTIVE = ("starting", "running")
FINAL = ("succeeded", "failed", "stopped")
MAX_RECORD_BYTES = 256 * 1024


class JobError(ValueError):
    """An unknown, malformed or unreadable job id; the message says what to do."""


@dataclass
class JobRecord:
    id: str
    kind: str
    command: list[str]
    cwd: str
    log: str
    """The job's stdout and stderr."""
    state: str = "starting"
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    """The supervisor (leader of the job's process group)."""
    pid_start: int | None = None
    """The supervisor's start time in clock ticks since boot (tells a reused pid apart)."""
    child_pid: int | None = None
    """The command itself."""
    child_start: int | None = None
    exit_code: int | None = None
    run_dir: str | None = None
    run_glob: str | None = None
    """A pattern that finds the run folder once the command has created it (training)."""
    task: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "JobRecord":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def new_job_id(kind: str) -> str:
    if kind not in KINDS:
        raise JobError(f"unknown job kind '{kind}'; kinds: {list(KINDS)}")
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time since boot), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def pid_alive(pid: int | None, start_ticks: int | None = None) -> bool:
    """The process exists (and, if known, is the same process: a reused pid has another start time)."""
    if not pid:
        return False
    if Path("/proc").is_dir():
        now = process_start_ticks(pid)
        if now is None:
            return False
        if _zombie(pid):
            return False
        return start_ticks is None or now == start_ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] == "Z"
    except (OSError, ValueError, IndexError):
        return False


class JobStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise JobError(f"'{job_id}' is not a job id (they look like train-20260101-120000-ab12); list_runs shows "
                           "the runs and their jobs")
        return self.root / f"{job_id}.json"

    def save(self, record: JobRecord) -> Path:
        return atomic_write_json(self.path(record.id), record.to_json())

    def load(self, job_id: str) -> JobRecord:
        path = self.path(job_id)
        if not path.is_file():
            raise JobError(f"no job '{job_id}' in {self.root}; list_runs shows the known runs and jobs")
        return read_record(path)

    def all(self) -> list[JobRecord]:
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.glob("*.json")):
            if JOB_ID.match(path.stem):
                try:
                    out.append(read_record(path))
                except JobError:
                    continue
        return out

    def state(self, record: JobRecord) -> str:
        """The recorded state, or ``orphaned`` if the record says running and its supervisor is gone."""
        if record.state in ACTIVE and not pid_alive(record.pid, record.pid_start):
            if record.state == "starting" and record.pid is None and time.time() - record.created < 30:
                return "starting"  # the supervisor has not written its pid yet
            return "orphaned"
        return record.state


def read_record(path: Path) -> JobRecord:
    from roarm_lab.utils.files import UnsafeFileError, read_bounded_text

    try:
        data = json.loads(read_bounded_text(path, MAX_RECORD_BYTES, "job record"))
        return JobRecord.from_json(data)
    except (UnsafeFileError, json.JSONDecodeError, TypeError) as err:
        raise JobError(f"job record {path} is unreadable ({err}); delete it or start the job again") from None
