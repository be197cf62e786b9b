"""The emulator as a child process (a separate Python, as users run it), started and stopped by tests and tools."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import tempfile
import time

from roarm_lab.real.emulator.config import READY_PREFIX


class EmulatorProcess:
    """The CLI as a child process (a separate Python, as users run it); waits for its ready line."""

    def __init__(self, *cli_args: str, ready_timeout_s: float = 30.0):
        self.args = [sys.executable, "-m", "roarm_lab.real.emulator", "--parent-pid", str(os.getpid()), *cli_args]
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: str | None = None
        self.http_url: str | None = None
        self._stderr = tempfile.TemporaryFile()

    def start(self) -> "EmulatorProcess":
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout_s
        out = b""
        while b"\n" not in out:
            left = deadline - time.monotonic()
            if self.proc.poll() is not None or left <= 0:
                why = (f"exited with code {self.proc.returncode}" if self.proc.returncode is not None
                       else f"printed no ready line within {self.ready_timeout_s:.0f} s")
                self.stop()
                raise RuntimeError(f"emulator {why}; stdout {out[-500:]!r}; stderr: {self._stderr_tail()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.2))
            if ready:
                out += os.read(self.proc.stdout.fileno(), 4096)
        line = out.split(b"\n", 1)[0].decode(errors="replace")
        match = re.fullmatch(rf"{READY_PREFIX} serial=(\S+) http=(\S+)", line.strip())
        if match is None:
            self.stop()
            raise RuntimeError(f"unexpected first line from the emulator: {line!r}")
        self.port = match.group(1)
        self.http_url = None if match.group(2) == "none" else match.group(2)
        return self

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode(errors="replace").strip() or "(empty)"

    def __enter__(self) -> "EmulatorProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._stderr.close()
