"""Training, evaluation, export, gateway and TensorBoard tools. Long work is a job: the tool returns its id at
once, and wait_for_job follows it with progress notifications."""


from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, Elicit, Resolve
from pydantic import BaseModel, Field

from roarm_lab import DEFAULT_TASK
from roarm_lab.control import rules
from roarm_lab.control.errors import ControlError
from roarm_lab.control.lab import Lab
from roarm_lab.mcp_server.consent import NotAsked, ask, require_yes
from roarm_lab.mcp_server.follow import follow
from roarm_lab.mcp_server.translate import ACT, READ, STOP, image_reply, tool, within

RunRef = Annotated[str, Field(description="a run id (list_runs) or the job id start_training returned")]
JobRef = Annotated[str, Field(description="a job id (training, evaluation, export, real-arm run), a run id, or a "
                                          "simulator run_id from run_policy_in_sim")]
Checkpoint = Annotated[str | None, Field(description="a model_<N>.pt path inside the runs folder (default: the "
                                                     "run's newest)")]
RunIds = Annotated[list[str], Field(min_length=1, max_length=int(rules.COMPARED_RUNS.high),
                                    description="run ids (list_runs), 1 to 8")]
Task = Annotated[str, Field(description="a registered task id (list_tasks lists them)")]
Label = Annotated[str, Field(max_length=60, pattern=r"^[A-Za-z0-9_.-]*$",
                             description="a short label for the folder it writes")]
RUNS_SHOWN = 20


class DeleteConfirmation(BaseModel):
    confirm: bool = Field(default=False, description="Yes: delete this run folder and everything in it")


def register(mcp: MCPServer, lab: Lab) -> None:
    t = lab.training

    @tool(mcp, ACT)
    def start_training(task: Task = DEFAULT_TASK,
                       num_envs: Annotated[int, within(rules.NUM_ENVS, "parallel environments (default: the "
                                                       "task's: list_tasks)")] = None,
                       max_iterations: Annotated[int, within(rules.MAX_ITERATIONS, "PPO iterations (default: the "
                                                             "task's: list_tasks)")] = None,
                       overrides: Annotated[list[str], Field(max_length=rules.MAX_OVERRIDES, description="config "
                                            "overrides, e.g. ['env.rewards.tracking.weight=-3.0']")] = None,
                       run_name: Label = "",
                       seed: Annotated[int, within(rules.SEED, "random seed (default: the task's)")] = None,
                       preset: Annotated[str | None, Field(description="a preset in configs/presets/, by name (e.g. "
                                                           "reach_no_randomization); overrides apply after it")] = None):
        """Start PPO training as a background job. The result echoes the plan (envs, iterations, expected
        minutes on this machine); follow it with wait_for_job, stop it with stop_training."""
        return t.start_training(task, num_envs, max_iterations, list(overrides or []), run_name, seed, preset)

    @tool(mcp, ACT)
    def resume_training(run_id: RunRef,
                        max_iterations: Annotated[int, within(rules.MAX_ITERATIONS, "train up to this total "
                                                              "(default: the run's own)")] = None):
        """Continue a stopped or finished training from its newest checkpoint, in its own folder."""
        return t.resume(run_id, max_iterations)

    @tool(mcp, READ)
    def training_status(run_id: JobRef):
        """A job's or run's state: iteration/total and ETA, success rate, the task's error (error_label), newest checkpoint, final
        metrics, the error if it failed, the last console lines (tail_log pages further)."""
        return t.status(run_id, tail=5)

    @tool(mcp, READ)
    async def wait_for_job(ctx: Context, ref: JobRef,
                           timeout_s: Annotated[float, within(rules.WAIT_S, "seconds to wait at most")] = 60):
        """Wait until a job or simulator run ends, or timeout_s passes, sending progress; returns its status.
        Cancelling the wait leaves the job running."""
        return await follow(lab, ref, timeout_s, ctx)

    @tool(mcp, STOP)
    def stop_training(run_id: JobRef):
        """Stop a running training, evaluation or export job. Checkpoints stay; resume_training continues."""
        return t.stop(run_id)

    @tool(mcp, ACT)
    def start_sweep(task: Task = DEFAULT_TASK,
                    num_samples: Annotated[int, within(rules.SWEEP_SAMPLES, "trials to run")] = 8,
                    max_iterations: Annotated[int, within(rules.MAX_ITERATIONS, "each trial's budget in iterations "
                                                          "of the task's default batch (default: the task's)")] = None,
                    overrides: Annotated[list[str], Field(max_length=rules.MAX_OVERRIDES, description="overrides every "
                                         "trial keeps, e.g. ['env.scene.num_envs=512']")] = None,
                    name: Label = "",
                    resume: Annotated[str | None, Field(description="a stopped sweep (its job id or name): continue it "
                                                        "instead; the other arguments are then its own")] = None):
        """Start a hyperparameter sweep (Ray Tune: Optuna proposes, ASHA stops the trials that fall behind) over
        the task's search space (configs/sweeps/<task>.yaml), or resume a stopped one. It counts as a training: one
        at a time. Each trial is an ordinary run; sweep_status lists them and names the best trial's overrides."""
        if resume:
            return lab.sweeps.resume(resume)
        return lab.sweeps.start(task, num_samples, max_iterations, list(overrides or []), name)

    @tool(mcp, READ)
    def sweep_status(sweep: Annotated[str, Field(description="the sweep job id start_sweep returned, or a sweep "
                                                 "name")]):
        """A sweep's state and its trials so far: drawn values, success, samples to the target, run ids."""
        return lab.sweeps.status(sweep)

    @tool(mcp, STOP)
    def stop_sweep(sweep: Annotated[str, Field(description="the sweep job id or name")]):
        """Stop a sweep as Ctrl-C does: Ray Tune saves it and stops its trials (their run folders stay);
        start_sweep(resume=<its name>) continues it."""
        return lab.sweeps.stop(sweep)

    @tool(mcp, READ)
    def list_runs(task: Annotated[str | None, Field(description="only runs of this task")] = None):
        """The newest training runs (checkpoints, export, success rate) and the jobs running now."""
        result = t.runs(task)
        runs = result.runs[-RUNS_SHOWN:]
        keep = ("run_id", "task", "job_id", "job_state", "checkpoints", "finished", "exported", "success_rate")
        return {"runs": [{k: r.get(k) for k in keep if r.get(k) is not None} for r in runs],
                "older_runs": max(0, len(result.runs) - RUNS_SHOWN), "active_jobs": result.active_jobs}

    @tool(mcp, READ)
    def compare_runs(run_ids: RunIds):
        """Runs side by side: envs, iterations, minutes, training and held-out success, error, overrides, as a
        markdown table."""
        return t.compare(run_ids)["table"]

    @tool(mcp, READ)
    def plot_training(run_ids: RunIds):
        """A PNG of the learning curves (success rate and the task's error against minutes) of one run or several
        compared."""
        png, shown = t.curves(run_ids)
        return image_reply(png, {"runs": shown})

    @tool(mcp, READ)
    def tail_log(source: Annotated[Literal["job", "sim", "gateway"], Field(
                     description="job: a job's or run's log (the training console); sim / gateway: the service's")
                 ] = "job",
                 ref: Annotated[str | None, Field(description="the job or run id (source job)")] = None,
                 lines: Annotated[int, within(rules.LOG_LINES, "lines in this page")] = 40,
                 before: Annotated[int, Field(ge=0, description="skip this many newest lines (the previous page's "
                                              "'older' value)")] = 0):
        """A page of a log, newest lines last; 'older' is the 'before' of the next older page."""
        return lab.log_page(source, ref, lines, before)

    def confirm_delete(ctx: Context, run_id: str) -> Elicit[DeleteConfirmation] | NotAsked:
        try:
            run = lab.run(run_id)
        except Exception:  # the body reports a bad run id
            return NotAsked()
        return ask(ctx, f"Delete run {run.id} ({run.experiment}) and all its checkpoints and exports? This cannot "
                        "be undone.", DeleteConfirmation)

    @tool(mcp, STOP)
    def delete_run(run_id: RunRef,
                   confirmation: Annotated[ElicitationResult[DeleteConfirmation], Resolve(confirm_delete)] = None):
        """Delete a run folder after the user confirms (not while a job uses it)."""
        run = lab.run(run_id)
        require_yes(confirmation, f"delete {run.id}")
        return {"deleted": t.delete(run)}

    @tool(mcp, ACT)
    def evaluate_policy(run_id: Annotated[str | None, Field(description="a run id or training job id")] = None,
                        checkpoint: Checkpoint = None,
                        episodes: Annotated[int, within(rules.EPISODES, "held-out targets, one 3 s episode "
                                                        "each")] = 200,
                        randomize: Annotated[bool, Field(description="domain randomization and observation noise "
                                                         "on")] = False):
        """Evaluate a checkpoint on held-out targets as a job (play.py; it also exports). Success: final hand
        error under 2 cm."""
        return t.evaluate(run_id, checkpoint, episodes, randomize)

    @tool(mcp, ACT)
    def export_policy(run_id: Annotated[str | None, Field(description="a run id or training job id")] = None,
                      checkpoint: Checkpoint = None):
        """Export a checkpoint to <run>/exported/ (ONNX, TorchScript, policy.json); a job unless up to date."""
        return t.export(run_id, checkpoint)

    @tool(mcp, ACT)
    def start_gateway(policy: Annotated[str, Field(description="a run id or an exported/ folder inside the runs "
                                                   "folder")]):
        """Serve an exported policy over ZeroMQ on a free loopback port (for run_policy_in_sim use_gateway and
        the real-arm bridge)."""
        return lab.serve(policy)

    @tool(mcp, READ)
    def gateway_stats():
        """The running gateway: endpoint, policy, latency percentiles (us), deadline misses, errors, clients."""
        info = lab.gateway.info()
        if not info.running:
            raise ControlError("no gateway is running: start_gateway(policy) starts one")
        return info.model_dump(mode="json", exclude={"spec"}, exclude_none=True)

    @tool(mcp, STOP)
    def stop_gateway():
        """Stop the policy gateway; its clients then get no actions (a real-arm bridge holds its pose)."""
        was = lab.gateway.stop()
        return {"done": was, "message": "gateway stopped" if was else "no gateway was running"}

    @tool(mcp, ACT)
    def start_tensorboard():
        """TensorBoard over all runs on a loopback port; returns its URL (the running one's if started)."""
        return lab.tensorboard.start()
