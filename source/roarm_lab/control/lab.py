"""The lab: the state every face shares and the actions it offers (the control plane's one entry point).

The MCP server and the panel each hold one ``Lab``; every rule they obey is applied here or below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roarm_lab.control.errors import ControlError
from roarm_lab.control.gateway import GatewayLink
from roarm_lab.control.jobs import ACTIVE, JobStore
from roarm_lab.control.models import EstopResult, GatewayInfo, InferResult, Progress
from roarm_lab.control.real import RealArm
from roarm_lab.control.runs import Run, find_run, resolve_export
from roarm_lab.control.settings import LabSettings
from roarm_lab.control.tasks import task_catalogue
from roarm_lab.control.sim import SimLink
from roarm_lab.control.tensorboard import TensorBoardLink
from roarm_lab.control.sweeps import Sweeps
from roarm_lab.control.training import Training


class Lab:
    def __init__(self, settings: LabSettings):
        self.settings = settings
        self.paths = settings.paths
        self.store = JobStore(settings.paths)
        self.sim = SimLink(settings)
        self.gateway = GatewayLink(settings)
        self.training = Training(settings, self.store)
        self.sweeps = Sweeps(settings, self.store)
        self.real = RealArm(settings, self.store)
        self.tensorboard = TensorBoardLink(settings)

    def tasks(self) -> list[dict[str, Any]]:
        """The registered tasks with their profiles and defaults."""
        return task_catalogue()

    def run(self, ref: str) -> Run:
        """A run by id, training job id or path inside the runs folder."""
        return find_run(self.paths, self.store, ref)

    def export_of(self, ref: str) -> Path:
        """The exported/ folder of a run (or a path to one), inside the runs folder, symlinks followed."""
        return resolve_export(self.paths, self.store, ref)

    def serve(self, ref: str) -> GatewayInfo:
        """Serve a run's export on the gateway."""
        return self.gateway.start(self.export_of(ref))

    def policy_source(self, policy: str | None, use_gateway: bool) -> dict[str, str]:
        """Where the simulator takes actions from: the running gateway, or a run's export (checked here)."""
        if use_gateway:
            if not self.gateway.running():
                raise ControlError("no gateway is running: call start_gateway(policy) first, or use_gateway=false")
            return {"gateway": self.gateway.endpoint}
        if not policy:
            raise ControlError("name the policy (a run id from list_runs) or set use_gateway=true")
        return {"export": str(self.export_of(policy))}

    def infer(self, policy: str, observation: list[float] | dict[str, list[float]] | None) -> InferResult:
        """One action of an exported policy on an observation (given, or captured from the simulator); moves
        nothing. The joint targets follow policy.json's action convention from the measured pose."""
        import numpy as np

        from roarm_lab.policy import ClientTargets, LoadedPolicy

        if not policy:
            raise ControlError("name the policy: a run id from list_runs or an exported/ folder")
        folder = self.export_of(policy)
        loaded = LoadedPolicy.load(folder, "onnx")
        given = observation is not None
        if observation is None:
            observation = self.sim.call("observation")["observation"]["policy"]["vector"]
        parts: dict[str, Any] | Any = observation
        values = list(parts.values()) if isinstance(parts, dict) else [parts]
        try:
            arrays = [np.asarray(v, dtype=np.float64) for v in values]
        except (TypeError, ValueError):
            raise ControlError("observation must be numbers (a flat vector, or a map of term name -> numbers)") from None
        if not all(np.isfinite(a).all() for a in arrays):
            raise ControlError("observation contains NaN or Inf")
        try:
            obs = loaded.assemble({k: np.asarray(v, np.float32) for k, v in parts.items()}
                                  if isinstance(parts, dict) else np.asarray(parts, np.float32))
        except Exception as err:  # the loader's size check names the parts
            raise ControlError(f"observation does not fit the policy: {getattr(err, 'message', err)}") from None
        action = loaded.infer(obs)
        targets, clipped = loaded.to_targets(action, obs, ClientTargets())
        names = list(loaded.meta["action"]["names"])
        return InferResult(policy=str(folder), observation_source="given" if given else "simulator",
                           action=[float(a) for a in action], joint_targets_rad=[float(t) for t in targets],
                           clipped=[n for n, c in zip(names, clipped) if c])

    def emergency_stop(self) -> EstopResult:
        """Stop everything that moves: every real-arm bridge (the stop file latched, where a real arm is configured
        or a real-arm run is active) first, then a policy running in the simulator."""
        latched = self.real.configured()
        signalled = self.real.emergency_stop() if latched else []
        sim_stopped = False
        if self.sim.running():
            try:  # stopped now, not a run that had ended before
                was_running = not self.sim.call("status", timeout_ms=1000, wait_s=0.5)["policy"].get("done", True)
                result = self.sim.call("stop_policy", timeout_ms=1500, wait_s=0.5)
                sim_stopped = was_running and bool(result["policy"].get("stopped"))
            except Exception:  # the arm comes first: a busy simulator must not fail the stop
                sim_stopped = False
        stop_file = str(self.settings.stop_file)
        sim = "the simulator's policy stopped" if sim_stopped else "no simulator policy was running"
        if latched:
            message = (f"stop file written ({stop_file}); " + (f"real-arm runs {signalled} told to torque-hold and "
                       "exit" if signalled else "no real-arm run was active") + f"; {sim}. Real runs are refused "
                       "until a person checks the arm and deletes the stop file (docs/real.md).")
        else:
            message = (f"{sim}. No real arm is configured on this server (no --allow-real-arm, no real-arm run), so "
                       "no stop file was latched.")
        return EstopResult(stop_file=stop_file if latched else None, latched=latched, real_jobs_signalled=signalled,
                           sim_policy_stopped=sim_stopped, message=message)

    # ------------------------------------------------------------------ watching
    def progress(self, ref: str) -> Progress:
        """Where a job or a simulator policy run stands, in one shape: done, a fraction, a line to show."""
        if isinstance(ref, str) and ref.startswith("simrun-"):
            run = self.sim.policy_run(ref)
            err = f", error {100 * run.final_error_m:.1f} cm" if run.final_error_m is not None else ""
            return Progress(ref=ref, kind="sim_policy", done=run.done,
                            fraction=min(1.0, run.steps / max(1, run.max_steps or 1)),
                            message=f"step {run.steps}/{run.max_steps}{err}" + (f", {run.stopped}" if run.stopped else ""),
                            result=run.model_dump(mode="json", exclude_none=True))
        if isinstance(ref, str) and ref.startswith("sweep-"):
            return self._sweep_progress(ref)
        status = self.training.status(ref, tail=0)
        done = status.state not in ACTIVE
        fraction = None
        if status.iteration and status.total_iterations:
            fraction = min(1.0, status.iteration / status.total_iterations)
        parts = [f"{status.kind} {status.state}"]
        if status.iteration is not None:
            parts.append(f"iteration {status.iteration}/{status.total_iterations}")
        if status.success_rate is not None:
            parts.append(f"success {status.success_rate:.2f}")
        if status.eta_s is not None and not done:
            parts.append(f"ETA {status.eta_s / 60:.1f} min")
        return Progress(ref=ref, kind=status.kind or "job", done=done, fraction=1.0 if done else fraction,
                        message=", ".join(parts), result=status.model_dump(mode="json", exclude_none=True))

    def restart(self, job_id: str) -> Any:
        """Start a failed, stopped or lost job again: a sweep continues where it stopped, the rest start anew."""
        if isinstance(job_id, str) and job_id.startswith("sweep-"):
            return self.sweeps.resume(job_id)
        return self.training.restart(job_id)

    def _sweep_progress(self, ref: str) -> Progress:
        sweep = self.sweeps.status(ref)
        done = sweep.state not in ACTIVE
        best = sweep.best_success_rate
        message = f"sweep {sweep.state}, {sweep.trials_ended}/{sweep.num_samples or '?'} trials ended" + (
            f", best success {best:.2f}" if best is not None else "")
        fraction = 1.0 if done else (min(1.0, sweep.trials_ended / sweep.num_samples) if sweep.num_samples else None)
        return Progress(ref=ref, kind="sweep", done=done, fraction=fraction, message=message,
                        result=sweep.model_dump(mode="json", exclude_none=True))

    def log_page(self, source: str, ref: str | None, lines: int, before: int) -> dict[str, Any]:
        """A page of a log: a job's or run's (``job``), the simulator's (``sim``) or the gateway's (``gateway``)."""
        from roarm_lab.control.jobs import JOB_ID
        from roarm_lab.control.logpages import page

        if source == "sim":
            return page(self.paths.sim_log, lines, before, "simulator")
        if source == "gateway":
            return page(self.paths.gateway_log, lines, before, "gateway")
        if source != "job":
            raise ControlError(f"source must be job, sim or gateway, got {source!r}")
        if not ref:
            raise ControlError("name the job or run (ref) whose log to read")
        if JOB_ID.match(ref):
            job = self.store.load(ref)
            try:
                run = None if job.kind != "train" else self.training._run(ref)
            except ControlError:  # no run folder yet (it failed at start-up): its own log says why
                run = None
            if run is not None and run.files.console.exists():
                return page(self.paths.served(run.files.console, "console log"), lines, before,
                            f"{ref} (training console)")
            return page(self.store.log(job), lines, before, ref)
        run = self.training._run(ref)
        return page(self.paths.served(run.files.console, "console log"), lines, before, f"{run.id} (training console)")

    def close(self) -> None:
        """Stop the helper services (jobs keep running: they outlive the face by design)."""
        self.sim.stop()
        self.gateway.stop()
        self.tensorboard.stop()
