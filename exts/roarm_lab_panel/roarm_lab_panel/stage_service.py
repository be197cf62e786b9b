"""The simulator-service protocol for the stage open in Isaac Sim (Isaac Sim only; it has NOT run: no Isaac Sim
on the project's machines, docs/panel.md).

The server is the project's own (``roarm_lab.sim_service.server.SimServer``: the same requests, limits, errors
and loopback-only bind), so the MCP tools and the panel drive Isaac Sim's scene through the same protocol as the
embedded simulator; they stay outside Kit and connect to this endpoint. The session is the project's
``SimSession`` on Isaac Lab 3 with the PhysX preset: Isaac Lab builds the task's scene (the RoArm-M3
articulation from the project's USD) into the open stage, the session reads it through the asset API
(``robot.data.*.torch``) and drives it through the task's own action term (Isaac Lab's ``*_index`` writers and
``robot.actuators.target_command.set_position_index`` setpoints), so nothing here restates the task.

The environment is built on the first ``start`` request (as for ``roarm-sim`` without ``--task``) and belongs to
the client that sent it. Kit's update loop pumps the server with a zero poll timeout; a step that itself
updates the app (Isaac Lab may render) cannot re-enter the pump.

The secret every request but hello/ping carries (docs/sim_service.md, "Access") is the one in
``ROARM_SIM_SECRET`` when Kit was started with it (a launcher that then drives the stage), else a new one that
the service writes to ``<project>/logs/sim/stage-service.secret`` (mode 600, atomically) for the clients outside
Kit to read, and removes when it closes. Shutdown is off: Kit owns the process.
"""

from __future__ import annotations

import logging
from typing import Any

MAX_REQUESTS_PER_UPDATE = 8
SECRET_FILE = "stage-service.secret"
log = logging.getLogger(__name__)


def stage_session_factory(task: str, **kwargs: Any) -> Any:
    """``SimSession`` on Isaac Lab with the PhysX preset (the caller's overrides are env.* only, as on the wire)."""
    from roarm_lab.isaaclab_api import RUNTIME
    from roarm_lab.sim_service.session import SimSession

    if RUNTIME != "isaaclab":
        raise RuntimeError(f"the stage service needs Isaac Lab in Isaac Sim's Python (this is the {RUNTIME} runtime)")
    kwargs["overrides"] = [*kwargs.get("overrides", []), "presets=physx"]
    kwargs["viewer"] = False  # Isaac Sim's viewport is the view
    return SimSession(task, **kwargs)


class StageService:
    def __init__(self, endpoint: str):
        from roarm_lab.control.layout import ProjectPaths
        from roarm_lab.sim_service.secret import service_secret
        from roarm_lab.sim_service.server import SimServer

        paths = ProjectPaths.at()
        secret, source = service_secret(None, paths.sim / SECRET_FILE)
        self.secret_file = paths.sim / SECRET_FILE if source.startswith("file:") else None
        """The file this service wrote its secret to (None: the secret came from ROARM_SIM_SECRET)."""
        try:
            self.server = SimServer(endpoint, secret=secret, secret_source=source, policy_roots=[paths.runs],
                                    data_dir=paths.sim, allow_shutdown=False, session_factory=stage_session_factory)
        except BaseException:
            self._forget_secret()
            raise
        log.info("stage service at %s; clients must send the secret (%s)", self.server.endpoint, source)
        self._pumping = False

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def pump(self) -> None:
        """Handle the requests already waiting (never blocks) and take a real-time control step when due."""
        if self._pumping:
            return
        self._pumping = True
        try:
            for _ in range(MAX_REQUESTS_PER_UPDATE):
                if not self.server.serve_once(timeout_ms=0):
                    break
        finally:
            self._pumping = False

    def close(self) -> None:
        self.server.close()
        self._forget_secret()

    def _forget_secret(self) -> None:
        if self.secret_file is not None:
            self.secret_file.unlink(missing_ok=True)
