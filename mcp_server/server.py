"""Build the MCP server: the tools (sim, jobs, real arm), the run resources, completions and the prompts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError, UnexpectedToolError
from mcp.types import Completion, EmptyResult, Resource, SetLevelRequestParams
from pydantic import Field, ValidationError

from roarm_lab import DEFAULT_TASK
from roarm_lab.control.lab import Lab
from roarm_lab.control.settings import LabSettings
from roarm_lab.mcp_server import tools_jobs, tools_real, tools_sim
from roarm_lab.mcp_server.translate import argument_error

INSTRUCTIONS = """RoArm Lab: train, evaluate and run policies for the Waveshare RoArm-M3 desk arm.
Positions are metres in the robot base frame (x forward, y left, z up); joints are radians.
Long work (training, evaluation, export, real-arm runs) is a job: the tool returns its id at once;
wait_for_job(id) follows it with progress. Simulator tools never touch the real arm; stop_policy stops a
simulated policy. The real arm moves only on a server started with --allow-real-arm, after the user confirms."""
RESOURCE_RUNS = 30
"""Newest runs listed in resources/list (each with its files)."""


class LabServer(MCPServer):
    """The SDK's server, with argument errors in one sentence and the runs listed as resources."""

    lab: Lab

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as err:
            cause = err.__cause__
            if isinstance(err, UnexpectedToolError):
                raise
            if isinstance(cause, ValidationError):
                tool = self._tool_manager.get_tool(name)
                raise ToolError(argument_error(name, tool.parameters if tool else {}, cause)) from cause
            if isinstance(cause, ToolError):  # the message the tool chose, without the SDK's prefix
                raise ToolError(str(cause)) from cause
            raise

    async def list_resources(self) -> list[Resource]:
        listed = await super().list_resources()
        from roarm_lab.control.runs import list_runs

        runs = list_runs(self.lab.paths, self.lab.store)[-RESOURCE_RUNS:]
        for run in reversed(runs):
            rid = run["run_id"]
            listed.append(Resource(uri=f"roarm://runs/{rid}/console", name=f"{rid} console",
                                   mime_type="text/plain", description="the training console's last lines"))
            if run["exported"]:
                listed.append(Resource(uri=f"roarm://runs/{rid}/policy.json", name=f"{rid} policy.json",
                                       mime_type="application/json", description="the exported policy's contract"))
            if run.get("success_rate") is not None:
                listed.append(Resource(uri=f"roarm://runs/{rid}/metrics.json", name=f"{rid} metrics.json",
                                       mime_type="application/json", description="held-out evaluation metrics"))
        return listed


def build_server(settings: LabSettings | None = None) -> LabServer:
    lab = Lab(settings or LabSettings())

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[Lab]:
        try:
            yield lab
        finally:
            lab.close()  # the simulator, the gateway and TensorBoard go with the server; jobs keep running

    mcp = LabServer("roarm-lab", instructions=INSTRUCTIONS, lifespan=lifespan)
    mcp.lab = lab
    tools_sim.register(mcp, lab)
    tools_jobs.register(mcp, lab)
    tools_real.register(mcp, lab)
    _resources(mcp, lab)
    _prompts(mcp)
    _completions(mcp, lab)
    _logging(mcp)
    return mcp


def _resources(mcp: MCPServer, lab: Lab) -> None:
    from roarm_lab.control.errors import expected_errors
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
                  description="held-out evaluation metrics of a run's exported policy")
    def metrics(run_id: str) -> str:
        return run_file(run_id, "metrics")

    @mcp.resource("roarm://runs/{run_id}/policy.json", mime_type="application/json",
                  description="the exported policy's contract: observation layout, action convention, limits")
    def policy(run_id: str) -> str:
        return run_file(run_id, "policy")

    @mcp.resource("roarm://runs/{run_id}/console", mime_type="text/plain",
                  description="the last 100 lines of a run's training console (tail_log pages further back)")
    def console(run_id: str) -> str:
        try:
            return "\n".join(lab.log_page("job", run_id, 100, 0)["lines"])
        except expected_errors() as err:
            raise ResourceError(str(err)) from None


def _prompts(mcp: MCPServer) -> None:
    @mcp.prompt(name="train_evaluate_try", title="Train, evaluate and try a policy")
    def train_evaluate_try(
            task: str = Field(DEFAULT_TASK, description="a task id (the list_tasks tool lists them)"),
            iterations: str = Field("300", description="PPO iterations to train (1 to 100000)"),
            target: str = Field("[0.25, 0.05, 0.15]", description="the task's goal [x, y, z] in m, base frame")) -> str:
        """Train a policy for a task in simulation, evaluate it, export it and try it in the simulator."""
        return (f"Train a {task} policy with start_training(task='{task}', max_iterations={iterations}) and follow it "
                "with wait_for_job, telling me the iteration, ETA and success rate; show plot_training when it ends. "
                "Then evaluate_policy on 500 held-out goals and wait for it; report the success rate and the "
                "error percentiles. Export it (export_policy). Start the simulator (start_sim with the same task), run "
                f"the policy with run_policy_in_sim(target={target}), show me render_rollout, and summarise what the "
                "task's measures show. Do not move the real arm.")

    @mcp.prompt(name="compare_runs", title="Compare training runs")
    def compare(run_ids: str = Field(description="run ids separated by commas (list_runs)")) -> str:
        """Compare runs: a table of their settings and results, and their learning curves."""
        return (f"Compare the runs {run_ids}: call compare_runs and plot_training with them, and tell me which "
                "learned fastest and which reached the best held-out success, and what differs in their settings.")


def _completions(mcp: MCPServer, lab: Lab) -> None:
    """Run ids complete wherever an argument names a run (resource templates, prompts)."""
    from roarm_lab.control.runs import list_runs

    @mcp.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Completion | None:
        if argument.name not in ("run_id", "run_ids"):
            return None
        typed = argument.value.rsplit(",", 1)[-1].strip()
        ids = [r["run_id"] for r in reversed(list_runs(lab.paths, lab.store))]
        found = [i for i in ids if i.startswith(typed)]
        return Completion(values=found[:100], total=len(found), has_more=len(found) > 100)


def _logging(mcp: MCPServer) -> None:
    """Declare MCP logging: tools that wait send a line at each milestone (the client picks the level)."""
    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()

    mcp._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
