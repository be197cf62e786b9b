"""Build the MCP server: the tools (sim, jobs, real arm), the run resources and the reach prompt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from roarm_lab.control.lab import Lab
from roarm_lab.control.settings import LabSettings
from roarm_lab.mcp_server import tools_jobs, tools_real, tools_sim

INSTRUCTIONS = """RoArm Lab: train, evaluate and run reach policies for the Waveshare RoArm-M3 desk arm.
Positions are metres in the robot base frame (x forward, y left, z up); joint values are radians.
Long work (training, evaluation, export, real-arm runs) is a job: the tool returns a job id at once; poll
training_status(job_id) every 30-60 s. Simulation tools never touch the real arm. Real-arm motion needs the
server started with --allow-real-arm and the user's confirmation of each run; dry_run is the default."""


def build_server(settings: LabSettings | None = None) -> MCPServer:
    lab = Lab(settings or LabSettings())

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[Lab]:
        try:
            yield lab
        finally:
            lab.close()  # the simulator and the gateway go with the server; jobs keep running

    mcp = MCPServer("roarm-lab", instructions=INSTRUCTIONS, lifespan=lifespan)
    tools_sim.register(mcp, lab)
    tools_jobs.register(mcp, lab)
    tools_real.register(mcp, lab)
    _resources(mcp, lab)
    _prompts(mcp)
    mcp.lab = lab  # type: ignore[attr-defined]  (tests and the CLI reach the state through the server)
    return mcp


def _resources(mcp: MCPServer, lab: Lab) -> None:
    from roarm_lab.control.errors import expected_errors
    from roarm_lab.control.runfiles import read_tail
    from roarm_lab.utils.files import read_bounded_text

    def run_file(run_id: str, pick: str) -> str:
        try:
            files = lab.run(run_id).files
            path = lab.paths.served({"metrics": files.metrics(), "policy": files.policy_spec}[pick], pick)
            if not path.is_file():
                raise ResourceError(f"{run_id} has no {path.name} yet")
            return read_bounded_text(path, 4 * 1024 * 1024, path.name)
        except expected_errors() as err:
            raise ResourceError(str(err)) from None

    @mcp.resource("roarm://runs/{run_id}/metrics.json", mime_type="application/json",
                  description="evaluation metrics of a run's exported policy (play.py's metrics.json)")
    def metrics(run_id: str) -> str:
        return run_file(run_id, "metrics")

    @mcp.resource("roarm://runs/{run_id}/policy.json", mime_type="application/json",
                  description="the exported policy's contract: observation layout, action convention, limits")
    def policy(run_id: str) -> str:
        return run_file(run_id, "policy")

    @mcp.resource("roarm://runs/{run_id}/console", mime_type="text/plain",
                  description="the last 64 KiB of a run's training console log (rsl_rl's per-iteration report)")
    def console(run_id: str) -> str:
        try:
            run = lab.run(run_id)
            return read_tail(lab.paths.served(run.files.console, "console log")) or f"{run.id} has no console log yet"
        except expected_errors() as err:
            raise ResourceError(str(err)) from None


def _prompts(mcp: MCPServer) -> None:
    @mcp.prompt(name="train_evaluate_try_reach", title="Train, evaluate and try a reach policy")
    def train_evaluate_try(iterations: str = "300", target: str = "[0.25, 0.05, 0.15]") -> str:
        """Train a reach policy in simulation, evaluate it, export it and try it in the simulator."""
        return (f"Train a RoArm-Reach-v0 policy with start_training(max_iterations={iterations}) and poll "
                "training_status every minute until it succeeds, telling me the iteration, ETA and success rate. "
                "Then evaluate_policy on 500 held-out targets and wait for it; report the success rate and the p95 "
                "final error. Export it (export_policy). Start the simulator (start_sim), run the policy with "
                f"run_policy_in_sim(target={target}), show me the scene with render_sim, and summarise how close "
                "the hand got. Do not move the real arm.")
