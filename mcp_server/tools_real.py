"""Real-arm tools, the emergency stop and the environment check. Motion needs --allow-real-arm and the user's
confirmation of each run; anything else refuses in plain words and sends nothing."""

from typing import Annotated

import anyio
from mcp.server import MCPServer
from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, Elicit, Resolve
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from roarm_lab.control import rules
from roarm_lab.control.lab import Lab
from roarm_lab.control.runs import rel_path
from roarm_lab.mcp_server.consent import NotAsked, ask, require_yes
from roarm_lab.mcp_server.translate import tool

Targets = Annotated[list[Annotated[list[float], Field(min_length=3, max_length=3)]], Field(
    min_length=int(rules.REAL_TARGETS.low), max_length=int(rules.REAL_TARGETS.high),
    description="hand targets [[x, y, z], ...] in m, base frame (x forward, y left, z up); each held 4 s")]


class ArmConfirmation(BaseModel):
    """What the user is asked before the real arm moves (the elicitation's schema)."""

    confirm: bool = Field(default=False, description="Yes: move the real arm now (it will move to the policy's start "
                          "pose, then to each target). Keep clear of the arm; emergency_stop stops it.")


def register(mcp: MCPServer, lab: Lab) -> None:
    asked: dict[tuple[str, str], str] = {}
    """The fingerprint each question showed, by (policy, targets), until its answer is used."""

    def confirm_real_run(ctx: Context, policy: str, targets: list[list[float]], dry_run: bool = True) -> (
            Elicit[ArmConfirmation] | NotAsked):
        """Ask the user only when the run could start; a refusal before asking is explained by the tool body."""
        if dry_run or lab.real.refusal() is not None:
            return NotAsked()
        try:
            _, plan = lab.real.plan(policy, targets)
        except Exception:  # the body reports the bad input
            return NotAsked()
        asked[(policy, repr(targets))] = plan["fingerprint"]
        return ask(ctx, lab.real.question(plan), ArmConfirmation)

    @tool(mcp, ToolAnnotations(read_only_hint=True, open_world_hint=True))
    def real_arm_status(probe: Annotated[bool, Field(description="open the port and read one feedback frame (no "
                                                     "motion)")] = False):
        """The real arm: motion allowed here, robot and port, the stop latch, a running run, the last summary,
        and (probe) the joints now."""
        return lab.real.status(probe)

    @tool(mcp, ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True))
    def run_policy_on_real_arm(
            policy: Annotated[str, Field(description="a run id or an exported/ folder")], targets: Targets,
            dry_run: Annotated[bool, Field(description="true (default): check and describe the run, send "
                                           "nothing")] = True,
            confirmation: Annotated[ElicitationResult[ArmConfirmation], Resolve(confirm_real_run)] = None):
        """Drive the REAL RoArm-M3 with an exported policy to hand targets (run_real.py as a job). dry_run=false
        needs --allow-real-arm on this server and the user's yes; without it nothing is sent."""
        if dry_run:
            return lab.real.run(policy, targets, True, False)
        why = lab.real.refusal()
        if why is None:
            lab.real.plan(policy, targets)  # a bad policy or target says so before any talk of confirmation
            require_yes(confirmation, "the real-arm run")
        return lab.real.run(policy, targets, False, why is None, asked.pop((policy, repr(targets)), None))

    @tool(mcp, ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                               open_world_hint=True))
    async def emergency_stop():
        """Stop everything that moves: real-arm bridges torque-hold and exit (the stop file is latched where a
        real arm is configured), and a simulator policy stops. Never asks."""
        with anyio.CancelScope(shield=True):
            return await anyio.to_thread.run_sync(lab.emergency_stop)

    @tool(mcp, ToolAnnotations(read_only_hint=True, open_world_hint=False))
    def check_environment():
        """What this machine can run: Python, torch, MuJoCo, the runtimes, GPU, the MCP SDK, node. Also written
        to logs/env_diag_<time>.txt."""
        from roarm_lab.envcheck import collect, write_report

        rows = collect()
        path = write_report(rows, lab.settings.paths.logs)
        return {"checks": [r.as_dict() for r in rows], "report_file": rel_path(lab.settings.paths, path)}
