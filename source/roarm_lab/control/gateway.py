"""The policy gateway as a helper process of the control plane (``scripts/gateway.py`` on a free loopback port).

Only an export inside the runs folder is served (the caller resolves it with ``runs.resolve_export``, which
follows symlinks); if the gateway dies by itself, the link remembers how (``died``) until the next start."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from roarm_lab.control.errors import ControlError
from roarm_lab.control.models import GatewayInfo
from roarm_lab.control.process import exit_words
from roarm_lab.control.runs import rel_path
from roarm_lab.control.settings import LabSettings
from roarm_lab.utils.services import ServiceError, ServiceProcess

READY = r"(tcp://127\.0\.0\.1:\d+)"


class GatewayLink:
    def __init__(self, settings: LabSettings):
        self.settings = settings
        self.proc: ServiceProcess | None = None
        self.policy: Path | None = None
        self.endpoint: str | None = None
        self.died: dict | None = None
        """How the gateway ended when it was not stopped: exit code, in words, its log's tail."""
        self._lock = threading.Lock()

    def running(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def check(self) -> None:
        """Notice a gateway that died by itself: remember how, and drop it."""
        with self._lock:
            if self.proc is not None and not self.proc.alive():
                code = self.proc.proc.returncode
                self.died = {"exit_code": code, "why": exit_words(code), "log_tail": self.proc.log_tail(6),
                             "log": rel_path(self.settings.paths, self.proc.log_path), "at": time.time()}
                self.proc.stop()
                self.proc = self.policy = self.endpoint = None

    def start(self, export_dir: Path) -> GatewayInfo:
        export_dir = self.settings.paths.served(export_dir, "exported policy folder")
        with self._lock:
            if self.running():
                raise ControlError(f"a gateway is already serving {rel_path(self.settings.paths, self.policy)} on "
                               f"{self.endpoint}; call stop_gateway first")
            paths = self.settings.paths
            argv = [self.settings.python, str(paths.script("gateway.py")), "--policy", str(export_dir),
                    "--bind", "tcp://127.0.0.1:*", "--event-log", str(paths.gateway / "events.jsonl")]
            proc = ServiceProcess(argv, READY, paths.gateway_log, cwd=paths.root, ready_timeout_s=60)
            try:
                proc.start()
            except ServiceError as err:
                raise ControlError(f"the gateway did not start: {err}") from None
            self.proc, self.policy, self.endpoint, self.died = proc, export_dir, proc.match.group(1), None
        return self.info(with_stats=False)

    def info(self, with_stats: bool = True) -> GatewayInfo:
        if not self.running():
            return GatewayInfo(running=False)
        spec = stats = None
        if with_stats:
            from roarm_lab.gateway.client import GatewayClient, GatewayError, GatewayTimeout

            try:
                with GatewayClient(self.endpoint, timeout_ms=3000, retries=0, name="roarm-mcp") as client:
                    spec, stats = client.spec, client.stats()
            except (GatewayError, GatewayTimeout) as err:
                raise ControlError(f"the gateway on {self.endpoint} does not answer ({err}); stop_gateway and start it "
                               "again") from None
        return GatewayInfo(running=True, endpoint=self.endpoint, policy=rel_path(self.settings.paths, self.policy),
                           pid=self.proc.pid, spec=spec, stats=stats,
                           log=rel_path(self.settings.paths, self.proc.log_path))

    def stop(self) -> bool:
        with self._lock:
            was = self.running()
            self.died = None
            if self.proc is not None:
                self.proc.stop()
            self.proc = self.policy = self.endpoint = None
            return was
