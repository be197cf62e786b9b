"""Training, evaluation, export and gateway tools. Long work is a job: the tool returns its id at once."""


from typing import Annotated

from mcp.server import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from roarm_lab.control import rules
from roarm_lab.control.errors import ControlError
from roarm_lab.control.lab import Lab
from roarm_lab.control.models import Done, ExportResult, GatewayInfo, JobStarted, JobStatus, RunsResult
from roarm_lab.mcp_server.translate import guard, within

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
START = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
RunRef = Annotated[str | None, Field(description="a run id from list_runs, or the job id start_training returned")]
Checkpoint = Annotated[str | None, Field(description="a model_<N>.pt path inside the runs folder (default: the run's "
                                                     "newest)")]


def register(mcp: MCPServer, lab: Lab) -> None:
    t = lab.training

    @mcp.tool(annotations=START)
    @guard
    def start_training(task: str = "RoArm-Reach-v0",
                       num_envs: Annotated[int | None, within(rules.NUM_ENVS, "parallel environments (default "
                                                              "1024)")] = None,
                       max_iterations: Annotated[int | None, within(rules.MAX_ITERATIONS, "PPO iterations (default "
                                                                    "700, about 6 min on 2 cores)")] = None,
                       overrides: Annotated[list[str] | None, Field(description="Hydra-style config overrides, e.g. "
                                            "['env.rewards.tracking.weight=-3.0', 'agent.algorithm.learning_rate="
                                            "3e-4']; a wrong key is refused with the valid keys")] = None,
                       run_name: Annotated[str, Field(description="a short label for the run folder")] = "",
                       seed: int | None = None) -> JobStarted:
        """Start PPO training of a task as a background job and return its id at once (scripts/train.py).

        Training takes minutes to hours: poll training_status(run_id) every 30-60 s (iteration, ETA, success rate),
        stop it with stop_training. Checkpoints are saved atomically; results go to logs/rsl_rl/<experiment>/.
        """
        started = t.start_training(task, num_envs, max_iterations, list(overrides or []), run_name, seed)
        lab.store.wait_started(started.job_id)
        return started

    @mcp.tool(annotations=READ)
    @guard
    def training_status(run_id: Annotated[str, Field(description="a job id (training, evaluation, export or real-arm "
                                                     "run) or a run id from list_runs")]) -> JobStatus:
        """Status of a job or run from its own files: state, iteration/total and ETA, success rate and hand error,
        newest checkpoint, final metrics, the error if it failed, and the last lines of its console log."""
        return t.status(run_id)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                          open_world_hint=False))
    @guard
    def stop_training(run_id: Annotated[str, Field(description="the job id (or run id) to stop")]) -> JobStatus:
        """Stop a running job (training, evaluation or export). Its checkpoints stay; training can resume later."""
        return t.stop(run_id)

    @mcp.tool(annotations=READ)
    @guard
    def list_runs(task: Annotated[str | None, Field(description="only runs of this task (e.g. RoArm-Reach-v0)")] = None
                  ) -> RunsResult:
        """The training runs on disk (newest last) with their checkpoints, export and success rate, and the jobs
        that are running now."""
        return t.runs(task)

    @mcp.tool(annotations=START)
    @guard
    def evaluate_policy(run_id: RunRef = None, checkpoint: Checkpoint = None,
                        episodes: Annotated[int, within(rules.EPISODES, "held-out targets, one per 3 s "
                                                       "episode")] = 200,
                        randomize: Annotated[bool, Field(description="keep domain randomization and observation "
                                                         "noise on")] = False) -> JobStarted:
        """Evaluate a checkpoint on held-out targets as a background job (scripts/play.py: it also exports
        the policy). Returns a job id; training_status(job_id) gives the success rate (final hand error under
        2 cm) and error percentiles when it has succeeded."""
        return t.evaluate(run_id, checkpoint, episodes, randomize)

    @mcp.tool(annotations=START)
    @guard
    def export_policy(run_id: RunRef = None, checkpoint: Checkpoint = None) -> ExportResult:
        """Export a checkpoint to <run>/exported/ (policy.onnx, policy.pt, policy.json). If the export is already
        up to date nothing starts; else an export job starts (play.py, which also runs a short evaluation)."""
        return t.export(run_id, checkpoint)

    @mcp.tool(annotations=START)
    @guard
    def start_gateway(policy: Annotated[str, Field(description="a run id or an exported/ folder inside the runs "
                                                   "folder")]) -> GatewayInfo:
        """Serve an exported policy over ZeroMQ on a free loopback port (the policy gateway), for the simulator
        (run_policy_in_sim with use_gateway=true) and the real-arm bridge."""
        return lab.serve(policy)

    @mcp.tool(annotations=READ)
    @guard
    def gateway_stats() -> GatewayInfo:
        """The running gateway's endpoint, policy and statistics: latency percentiles (us), deadline misses,
        errors, per-client counters."""
        info = lab.gateway.info()
        if not info.running:
            raise ControlError("no gateway is running: start_gateway(policy) starts one")
        return info

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                          open_world_hint=False))
    @guard
    def stop_gateway() -> Done:
        """Stop the policy gateway process started by start_gateway; clients then get no actions (a real-arm bridge
        holds its pose). Safe to call when none runs."""
        was = lab.gateway.stop()
        return Done(done=was, message="gateway stopped" if was else "no gateway was running")
