"""The state the tools share: the settings, the simulator, the gateway, the jobs, the real arm.

``guard`` turns the errors a caller can fix into ``ToolError`` (the model sees the message); anything else is
a bug and reaches the model only as "Error executing tool" (the SDK logs the traceback to stderr).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from roarm_lab.mcp_server.gateway import GatewayLink
from roarm_lab.mcp_server.real import RealArm
from roarm_lab.mcp_server.settings import LabError, LabSettings
from roarm_lab.mcp_server.sim import SimLink
from roarm_lab.mcp_server.training import Training

F = TypeVar("F", bound=Callable[..., Any])


def _expected() -> tuple[type[BaseException], ...]:
    from roarm_lab.gateway.client import GatewayError, GatewaySpecError, GatewayTimeout
    from roarm_lab.gateway.files import UnsafeFileError
    from roarm_lab.gateway.policy import PolicyLoadError
    from roarm_lab.jobs.paths import PathError
    from roarm_lab.jobs.runs import RunError
    from roarm_lab.jobs.services import ServiceError
    from roarm_lab.jobs.store import JobError
    from roarm_lab.real.bridge import BridgeError
    from roarm_lab.rl.overrides import OverrideError

    return (LabError, PathError, RunError, JobError, ServiceError, OverrideError, GatewayError, GatewaySpecError,
            GatewayTimeout, PolicyLoadError, UnsafeFileError, BridgeError)


def guard(fn: F) -> F:
    """Expected failures become ToolError with their message (signature and hints are kept for the schema)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ToolError:
            raise
        except _expected() as err:
            raise ToolError(str(err)) from None
    return wrapper  # type: ignore[return-value]


class Lab:
    def __init__(self, settings: LabSettings):
        self.settings = settings
        self.sim = SimLink(settings)
        self.gateway = GatewayLink(settings)
        self.training = Training(settings)
        self.real = RealArm(settings, self.training.store)

    def close(self) -> None:
        """Stop the helper services (jobs keep running: they outlive the server by design)."""
        self.sim.stop()
        self.gateway.stop()
