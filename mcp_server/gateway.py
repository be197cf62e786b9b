"""The policy gateway as a helper process of the MCP server (``scripts/gateway.py`` on a free loopback port)."""

from __future__ import annotations

import threading
from pathlib import Path

from roarm_lab.jobs.runs import rel_path
from roarm_lab.utils.services import ServiceError, ServiceProcess

from roarm_lab.mcp_server.models import GatewayInfo
from roarm_lab.mcp_server.settings import LabError, LabSettings

READY = r"(tcp://127\.0\.0\.1:\d+)"


class GatewayLink:
    def __init__(self, settings: LabSettings):
        self.settings = settings
        self.proc: ServiceProcess | None = None
        self.policy: Path | None = None
        self.endpoint: str | None = None
        self._lock = threading.Lock()

    def running(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def start(self, export_dir: Path) -> GatewayInfo:
        with self._lock:
            if self.running():
                raise LabError(f"a gateway is already serving {rel_path(self.settings.paths, self.policy)} on "
                               f"{self.endpoint}; call stop_gateway first")
            paths = self.settings.paths
            argv = [self.settings.python, str(paths.script("gateway.py")), "--policy", str(export_dir),
                    "--bind", "tcp://127.0.0.1:*", "--event-log", str(paths.gateway / "events.jsonl")]
            proc = ServiceProcess(argv, READY, paths.gateway / "gateway.log", cwd=paths.root, ready_timeout_s=60)
            try:
                proc.start()
            except ServiceError as err:
                raise LabError(f"the gateway did not start: {err}") from None
            self.proc, self.policy, self.endpoint = proc, export_dir, proc.match.group(1)
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
                raise LabError(f"the gateway on {self.endpoint} does not answer ({err}); stop_gateway and start it "
                               "again") from None
        return GatewayInfo(running=True, endpoint=self.endpoint, policy=rel_path(self.settings.paths, self.policy),
                           pid=self.proc.pid, spec=spec, stats=stats,
                           log=rel_path(self.settings.paths, self.proc.log_path))

    def stop(self) -> bool:
        with self._lock:
            was = self.running()
            if self.proc is not None:
                self.proc.stop()
            self.proc = self.policy = self.endpoint = None
            return was
