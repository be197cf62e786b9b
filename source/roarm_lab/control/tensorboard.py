"""TensorBoard over the runs folder as a helper process of the control plane, on a free loopback port.

``python -m roarm_lab.control.tensorboard --logdir DIR`` starts it and prints its address as its first line
(TensorBoard's own banner goes to stderr), which ``TensorBoardLink`` waits for."""

from __future__ import annotations

import argparse
import sys
import threading
import time

from roarm_lab.control.errors import ControlError
from roarm_lab.control.runs import rel_path
from roarm_lab.control.settings import LabSettings
from roarm_lab.utils.services import ServiceError, ServiceProcess

READY = r"(http://127\.0\.0\.1:\d+/)"


class TensorBoardLink:
    def __init__(self, settings: LabSettings):
        self.settings = settings
        self.proc: ServiceProcess | None = None
        self.url: str | None = None
        self._lock = threading.Lock()

    def running(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def start(self) -> dict:
        """TensorBoard's address: the running one's, or a new one's (about 5-15 s to start)."""
        with self._lock:
            if self.running():
                return {"url": self.url, "logdir": rel_path(self.settings.paths, self.settings.paths.runs),
                        "started": False}
            paths = self.settings.paths
            paths.runs.mkdir(parents=True, exist_ok=True)
            proc = ServiceProcess([self.settings.python, "-m", "roarm_lab.control.tensorboard", "--logdir",
                                   str(paths.runs)], READY, paths.logs / "tensorboard" / "tensorboard.log",
                                  cwd=paths.root, ready_timeout_s=90)
            try:
                proc.start()
            except ServiceError as err:
                raise ControlError(f"TensorBoard did not start: {err}") from None
            self.proc, self.url = proc, proc.match.group(1)
            return {"url": self.url, "logdir": rel_path(paths, paths.runs), "started": True}

    def stop(self) -> bool:
        with self._lock:
            was = self.running()
            if self.proc is not None:
                self.proc.stop()
            self.proc = self.url = None
            return was


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="TensorBoard on a free loopback port; prints its address first.")
    parser.add_argument("--logdir", required=True)
    args = parser.parse_args(argv)
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", args.logdir, "--host", "127.0.0.1", "--port", "0"])
    url = board.launch()
    print(url, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
