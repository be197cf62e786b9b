"""Real-arm tools and the environment check. Motion needs --allow-real-arm and the user's confirmation per run."""


from typing import Annotated

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Elicit, Resolve
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field


from roarm_lab.control.lab import Lab
from roarm_lab.control.models import EnvReport, EstopResult, RealArmStatus, RealRunResult
from roarm_lab.control.runs import rel_path
from roarm_lab.mcp_server.translate import guard

Targets = Annotated[list[list[float]], Field(description="hand targets [[x, y, z], ...] in metres in the robot base "
                                                         "frame (x forward, y left, z up); 1 to 20, each held 4 s")]


class ArmConfirmation(BaseModel):
    """What the user is asked before the real arm moves (the elicitation's schema)."""

    confirm: bool = Field(default=False, description="Yes: move the real arm now (it will move to the policy's start "
                          "pose, then to each target). Keep clear of the arm; emergency_stop stops it.")


def register(mcp: MCPServer, lab: Lab) -> None:
    def confirm_real_run(policy: str, targets: list[list[float]], dry_run: bool = True) -> (
            ArmConfirmation | Elicit[ArmConfirmation]):
        """Ask the user, only when the run could start; a refusal is explained by the tool body instead."""
        if dry_run or lab.real.refusal() is not None:
            return ArmConfirmation(confirm=False)
        try:
            _, plan = lab.real.plan(policy, targets)
        except Exception:  # the body reports the bad input
            return ArmConfirmation(confirm=False)
        return Elicit(lab.real.question(plan), ArmConfirmation)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True))
    @guard
    def real_arm_status(probe: Annotated[bool, Field(description="open the port and read one feedback frame (no "
                                                     "motion)")] = False) -> RealArmStatus:
        """The real arm's configuration and state: whether motion is allowed on this server, robot and port,
        the emergency-stop latch, a running real-arm job, the last run's summary, and (probe) the joints now."""
        return lab.real.status(probe)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True))
    @guard
    def run_policy_on_real_arm(policy: Annotated[str, Field(description="a run id or an exported/ folder")],
                               targets: Targets,
                               dry_run: Annotated[bool, Field(description="true (default): check and describe the "
                                                              "run, send nothing")] = True,
                               confirmation: Annotated[ArmConfirmation, Resolve(confirm_real_run)] = None
                               ) -> RealRunResult:
        """Drive the REAL RoArm-M3 with an exported policy to hand targets (scripts/run_real.py as a job).

        dry_run=true (the default) checks the policy and targets (reachable by the task's workspace) and returns
        the plan; nothing is opened or sent. dry_run=false needs the server started with --allow-real-arm and asks
        the user to confirm this run; without an explicit yes nothing is sent. The bridge moves slowly to the
        start pose, then runs the policy at 30 Hz with per-step and joint-box limits. emergency_stop halts it.
        """
        confirmed = bool(confirmation is not None and confirmation.confirm)
        return lab.real.run(policy, targets, dry_run, confirmed)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                          open_world_hint=True))
    async def emergency_stop() -> EstopResult:
        """Stop the real arm now: every running real-arm bridge torque-holds at its pose and exits, and new real
        runs are refused until a person deletes the stop file. Also stops a policy running in the simulator.
        Always available, never asks, cannot be cancelled half-way."""
        with anyio.CancelScope(shield=True):
            return await anyio.to_thread.run_sync(lab.emergency_stop)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    @guard
    def check_environment() -> EnvReport:
        """What this machine can run: Python, torch, MuJoCo, the runtimes (embedded, Isaac Lab, Isaac Sim), Warp
        devices, GPU, the MCP SDK and node (for the MCP Inspector). Also written to logs/env_diag_<time>.txt."""
        from roarm_lab.envcheck import collect, table, write_report

        rows = collect()
        path = write_report(rows, lab.settings.paths.logs)
        return EnvReport(checks=[r.as_dict() for r in rows], table=table(rows),
                         report_file=rel_path(lab.settings.paths, path))

