"""The state the tools share: the settings, the simulator, the gateway, the jobs, the real arm (the control
plane: the MCP tools and the lab panel, ``roarm_lab.panel``, both drive it).

``guard`` turns the errors a caller can fix into ``ToolError`` (the model sees the message); anything else is
a bug and reaches the model only as "Error executing tool" (the SDK logs the traceback to stderr).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from roarm_lab.mcp_server.gateway import GatewayLink
from roarm_lab.mcp_server.models import EstopResult
from roarm_lab.mcp_server.real import RealArm
from roarm_lab.mcp_server.settings import LabError, LabSettings
from roarm_lab.mcp_server.sim import SimLink
from roarm_lab.mcp_server.training import Training

F = TypeVar("F", bound=Callable[..., Any])


def expected_errors() -> tuple[type[BaseException], ...]:
    """The errors a caller can fix; their message says how (anything else is a bug)."""
    from roarm_lab.gateway.client import GatewayError, GatewaySpecError, GatewayTimeout
    from roarm_lab.utils.files import UnsafeFileError
    from roarm_lab.policy import PolicyLoadError
    from roarm_lab.jobs.paths import PathError
    from roarm_lab.jobs.runs import RunError
    from roarm_lab.utils.services import ServiceError
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
        except expected_errors() as err:
            raise ToolError(str(err)) from None
    return wrapper  # type: ignore[return-value]


class Lab:
    def __init__(self, settings: LabSettings):
        self.settings = settings
        self.sim = SimLink(settings)
        self.gateway = GatewayLink(settings)
        self.training = Training(settings)
        self.real = RealArm(settings, self.training.store)

    def emergency_stop(self) -> EstopResult:
        """Latch the real arm's stop file and signal every bridge, then stop a policy running in the simulator."""
        signalled = self.real.emergency_stop()
        sim_stopped = False
        if self.sim.running():
            try:
                result = self.sim.call("stop_policy", timeout_ms=3000, wait_s=2.0)
                sim_stopped = bool(result["policy"].get("stopped"))
            except Exception:  # the arm comes first: a busy simulator must not fail the stop
                sim_stopped = False
        stop_file = str(self.settings.stop_file)
        message = (f"stop file written ({stop_file}); " + (f"real-arm runs {signalled} told to torque-hold and exit"
                   if signalled else "no real-arm run was active") + ". Real runs are refused until a person checks "
                   "the arm and deletes the stop file.")
        return EstopResult(stop_file=stop_file, real_jobs_signalled=signalled, sim_policy_stopped=sim_stopped,
                           message=message)

    def close(self) -> None:
        """Stop the helper services (jobs keep running: they outlive the server by design)."""
        self.sim.stop()
        self.gateway.stop()
