"""``python -m roarm_lab.control.supervise --record FILE -- COMMAND...``: run one job and keep its record.

The supervisor leads the job's own session (the core starts it with ``start_new_session``), so the job outlives
the face that started it. It writes its pid, starts the command (from its own command line, never from the
record), writes ``running``, waits, and writes the end: ``succeeded`` / ``failed`` with the exit code, or
``stopped`` after a SIGTERM (forwarded to the command, then SIGKILL after a grace period) or after a SIGUSR1
(the caller stops the command its own way, e.g. the real-arm bridge's SIGINT, which a SIGTERM would cut short
before its torque-hold). The command is told to stop (SIGTERM) if the supervisor dies, so nothing runs
unsupervised; the core then settles the job as ``lost``. The job log is derived from the record's name.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from roarm_lab.control.jobs import JobStore
from roarm_lab.control.layout import ProjectPaths
from roarm_lab.control.process import start_ticks
from roarm_lab.utils.services import die_with_parent

GRACE_S = 20.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--record", required=True)
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    path = Path(args.record).resolve()
    store = JobStore(ProjectPaths(root=Path.cwd(), logs=path.parent.parent))
    record = store.read(path)
    record.pid, record.pid_start = os.getpid(), start_ticks(os.getpid())
    stop = {"signal": None, "marked": False}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    def on_mark(_signum: int, _frame: object) -> None:
        stop["marked"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # the command gets its own SIGINT (e.g. the bridge's finish-and-hold)
    signal.signal(signal.SIGUSR1, on_mark)  # "it is being stopped its own way": record stopped, forward nothing
    with open(store.log(record), "ab") as log:
        try:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent if sys.platform.startswith("linux") else None)
        except OSError as err:
            record.state, record.ended, record.exit_code = "failed", time.time(), 127
            record.error = f"cannot start {command[:1]}: {err}"
            store.save(record)
            return 127
        record.child_pid, record.child_start = child.pid, start_ticks(child.pid)
        record.state, record.started = "running", time.time()
        store.save(record)
        code = _wait(child, stop)
    record.exit_code, record.ended = code, time.time()
    stopped = stop["signal"] == signal.SIGTERM or stop["marked"]
    record.state = "stopped" if stopped else ("succeeded" if code == 0 else "failed")
    store.save(record)
    return 0


def _wait(child: subprocess.Popen, stop: dict) -> int:
    """Wait for the command; after a SIGTERM to us, pass it on and kill it if it outlives the grace period."""
    forwarded = None
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if stop["signal"] == signal.SIGTERM and forwarded is None:
            forwarded = time.monotonic()
            _signal(child, signal.SIGTERM)
        if forwarded is not None and time.monotonic() - forwarded > GRACE_S:
            _signal(child, signal.SIGKILL)


def _signal(child: subprocess.Popen, signum: int) -> None:
    try:
        child.send_signal(signum)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
