"""The emulator as a child process (a separate Python, as users run it), started and stopped by tests and tools.

A ``ServiceProcess`` like the lab's other helper processes: it dies with its parent, its output goes to a log,
and it is ready when it prints its ready line.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from roarm_lab.real.emulator.config import READY_PREFIX
from roarm_lab.utils.services import ServiceProcess


class EmulatorProcess:
    """``python -m roarm_lab.real.emulator *cli_args`` as a child; ``port`` and ``http_url`` once it is ready."""

    def __init__(self, *cli_args: str, ready_timeout_s: float = 30.0, log_path: str | Path | None = None):
        self._tmp = None if log_path is not None else tempfile.TemporaryDirectory(prefix="roarm-emulator-")
        log = Path(log_path) if log_path is not None else Path(self._tmp.name) / "emulator.log"
        self.service = ServiceProcess(
            [sys.executable, "-m", "roarm_lab.real.emulator", "--parent-pid", str(os.getpid()), *cli_args],
            rf"{READY_PREFIX} serial=(\S+) http=(\S+)", log, ready_timeout_s=ready_timeout_s)
        self.port: str | None = None
        self.http_url: str | None = None

    def start(self) -> "EmulatorProcess":
        match = self.service.start().match
        self.port = match.group(1)
        self.http_url = None if match.group(2) == "none" else match.group(2)
        return self

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        return self.service.stop(timeout_s)

    def __enter__(self) -> "EmulatorProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
