"""Training, evaluation and export as jobs (``scripts/train.py`` and ``scripts/play.py`` under a supervisor),
and their status from the run's own files. Every call returns at once; the caller polls."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from roarm_lab.jobs.launch import start_job, stop_job, wait_started
from roarm_lab.jobs.paths import SAFE_NAME
from roarm_lab.jobs.runfiles import last_lines, read_json, read_tail, training_progress
from roarm_lab.jobs.runs import (CONSOLE, Run, RunError, find_run, job_status, list_runs, rel_path,
                                 resolve_checkpoint)
from roarm_lab.jobs.store import ACTIVE, JOB_ID, JobStore
from roarm_lab.utils.untrusted import check_overrides

from roarm_lab.mcp_server.models import ExportResult, JobStarted, JobStatus, RunsResult
from roarm_lab.mcp_server.settings import LabError, LabSettings

MAX_ENVS = 8192
MAX_ITERATIONS = 100000
MAX_EPISODES = 5000
EXPORT_EPISODES = 64
"""play.py always evaluates after exporting: an export job runs this many held-out episodes."""


def experiment_of(task: str) -> str:
    from roarm_lab.registry import load_cfg_from_registry

    return load_cfg_from_registry(task, "rsl_rl_cfg_entry_point").experiment_name


def validate_task(task: str) -> None:
    from roarm_lab.registry import task_spec

    try:
        task_spec(task)
    except ValueError as err:
        raise LabError(str(err)) from None


class Training:
    def __init__(self, settings: LabSettings):
        self.settings = settings
        self.paths = settings.paths
        self.store = JobStore(settings.paths.jobs)

    # ------------------------------------------------------------------ start
    def start_training(self, task: str, num_envs: int | None, max_iterations: int | None, overrides: list[str],
                       run_name: str, seed: int | None) -> JobStarted:
        from roarm_lab.rl.run_setup import load_task_configs
        from roarm_lab.rl.overrides import OverrideError

        validate_task(task)
        if num_envs is not None and not 1 <= num_envs <= MAX_ENVS:
            raise LabError(f"num_envs must be in 1..{MAX_ENVS} (1024 is the task's default), got {num_envs}")
        if max_iterations is not None and not 1 <= max_iterations <= MAX_ITERATIONS:
            raise LabError(f"max_iterations must be in 1..{MAX_ITERATIONS}, got {max_iterations}")
        if run_name and not SAFE_NAME.match(run_name):
            raise LabError(f"run_name '{run_name}' must be letters, digits, '_', '-' or '.' (at most 100)")
        try:
            check_overrides(overrides)
            _, agent_cfg, applied = load_task_configs(task, list(overrides))  # the project's parser checks keys
        except (OverrideError, ValueError) as err:
            raise LabError(f"bad override: {err}") from None
        tag = secrets.token_hex(2)
        name = f"{run_name}-{tag}" if run_name else f"mcp-{tag}"
        cmd = [self.settings.python, str(self.paths.script("train.py")), "--task", task, "--log_root",
               str(self.paths.runs), "--run_name", name, "--no-progress"]
        cmd += ["--num_envs", str(num_envs)] * (num_envs is not None)
        cmd += ["--max_iterations", str(max_iterations)] * (max_iterations is not None)
        cmd += ["--seed", str(seed)] * (seed is not None)
        cmd += list(overrides)
        glob = str(self.paths.runs / agent_cfg.experiment_name / f"*_{name}")
        record = start_job(self.store, "train", cmd, cwd=self.paths.root, task=task, run_glob=glob,
                           params={"num_envs": num_envs, "max_iterations": max_iterations or agent_cfg.max_iterations,
                                   "overrides": applied, "run_name": name, "seed": seed})
        return JobStarted(job_id=record.id, run_id=record.id, kind="train", state=self.store.state(record),
                          command=cmd, log=rel_path(self.paths, Path(record.log)),
                          next=f"poll training_status(run_id='{record.id}') every 30-60 s; it reports iteration, ETA "
                               "and success rate; stop_training stops it")

    def evaluate(self, run_id: str | None, checkpoint: str | None, episodes: int, randomize: bool) -> JobStarted:
        if not 1 <= episodes <= MAX_EPISODES:
            raise LabError(f"episodes must be in 1..{MAX_EPISODES} (1000 is the project's standard), got {episodes}")
        run, ckpt = self._checkpoint(run_id, checkpoint)
        return self._play(run, ckpt, episodes, randomize, "evaluate")

    def export(self, run_id: str | None, checkpoint: str | None) -> ExportResult:
        run, ckpt = self._checkpoint(run_id, checkpoint)
        meta = run.export_dir / "policy.json"
        files = sorted(p.name for p in run.export_dir.glob("*")) if run.export_dir.is_dir() else []
        if meta.is_file() and meta.stat().st_mtime >= ckpt.stat().st_mtime and self._exported_from(run, ckpt):
            return ExportResult(run_id=run.id, checkpoint=rel_path(self.paths, ckpt),
                                export_dir=rel_path(self.paths, run.export_dir), up_to_date=True, files=files)
        started = self._play(run, ckpt, EXPORT_EPISODES, False, "export")
        return ExportResult(run_id=run.id, checkpoint=rel_path(self.paths, ckpt),
                            export_dir=rel_path(self.paths, run.export_dir), up_to_date=False, job_id=started.job_id,
                            files=files)

    def _exported_from(self, run: Run, ckpt: Path) -> bool:
        metrics = read_json(run.export_dir / "metrics.json", "metrics") or {}
        return Path(str(metrics.get("checkpoint", ""))).name == ckpt.name

    def _checkpoint(self, run_id: str | None, checkpoint: str | None) -> tuple[Run, Path]:
        try:
            return resolve_checkpoint(self.paths, self.store, run_id, checkpoint)
        except (RunError, ValueError) as err:
            raise LabError(str(err)) from None

    def _play(self, run: Run, ckpt: Path, episodes: int, randomize: bool, kind: str) -> JobStarted:
        busy = [j.id for j in self.store.all() if j.kind in ("evaluate", "export") and j.run_dir == str(run.path)
                and self.store.state(j) in ACTIVE]
        if busy:
            raise LabError(f"job {busy[0]} is already evaluating/exporting run {run.id}; wait for it (training_status)")
        info = read_json(run.path / "run.json", "run record") or {}
        task = info.get("task") or (run.job.task if run.job else None) or self.settings.default_task
        cmd = [self.settings.python, str(self.paths.script("play.py")), "--task", task, "--checkpoint", str(ckpt),
               "--episodes", str(episodes), "--num_envs", str(min(episodes, 250)), "--no-progress"]
        cmd += ["--randomize"] * randomize
        record = start_job(self.store, kind, cmd, cwd=self.paths.root, task=task, run_dir=run.path,
                           params={"checkpoint": ckpt.name, "episodes": episodes, "randomize": randomize})
        return JobStarted(job_id=record.id, run_id=run.id, kind=kind, state=self.store.state(record), command=cmd,
                          log=rel_path(self.paths, Path(record.log)),
                          next=f"poll training_status(run_id='{record.id}'); when it has succeeded, metrics holds the "
                               "success rate and errors" + ("; the export is in <run>/exported" if kind == "export" else ""))

    # ------------------------------------------------------------------ status
    def status(self, ref: str, tail: int = 15) -> JobStatus:
        try:
            if JOB_ID.match(ref or ""):
                return self._job_status(ref, tail)
            run = find_run(self.paths, self.store, ref)
        except (RunError, ValueError) as err:
            raise LabError(str(err)) from None
        if run.job is not None:
            return self._job_status(run.job.id, tail)
        console = read_tail(run.path / CONSOLE)
        info = read_json(run.path / "run.json", "run record")
        progress = training_progress(console)
        return JobStatus(job_id=None, kind="train", state="finished" if info else "unknown", run_id=run.id,
                         run_dir=rel_path(self.paths, run.path), metrics=info.get("final_metrics") if info else None,
                         console_tail=last_lines(console, tail), **_progress_fields(progress),
                         next=None if not info else f"evaluate_policy(run_id='{run.id}') or export_policy(run_id='{run.id}')")

    def _job_status(self, job_id: str, tail: int) -> JobStatus:
        raw = job_status(self.paths, self.store, job_id, tail)
        progress = raw.pop("progress")
        fields = {k: raw[k] for k in ("job_id", "kind", "state", "exit_code", "task", "run_id", "run_dir",
                                      "elapsed_s", "newest_checkpoint", "metrics", "error", "console_tail")}
        status = JobStatus(**fields, **_progress_fields(progress))
        if status.success_rate is None and raw["metrics"] and "success_rate" in raw["metrics"]:
            status.success_rate = raw["metrics"]["success_rate"]
        status.next = _next_step(status)
        return status

    def stop(self, ref: str) -> JobStatus:
        try:
            job_id = ref if JOB_ID.match(ref or "") else getattr(find_run(self.paths, self.store, ref).job, "id", None)
            if job_id is None:
                raise LabError(f"run {ref} has no job record: it was not started here, nothing to stop")
            if self.store.load(job_id).kind == "real":  # a SIGTERM would cut the bridge off before its torque-hold
                raise LabError(f"{job_id} is a real-arm run: stop it with emergency_stop (it torque-holds the arm)")
            stop_job(self.store, job_id)
        except (RunError, ValueError) as err:
            raise LabError(str(err)) from None
        return self._job_status(job_id, 10)

    def runs(self, task: str | None) -> RunsResult:
        experiment = None
        if task:
            validate_task(task)
            experiment = experiment_of(task)
        active = [{"job_id": j.id, "kind": j.kind, "state": self.store.state(j), "task": j.task}
                  for j in self.store.all() if self.store.state(j) in (*ACTIVE, "orphaned")]
        return RunsResult(runs=list_runs(self.paths, self.store, experiment), active_jobs=active)

    def wait_started(self, job_id: str) -> None:
        wait_started(self.store, job_id)


def _progress_fields(progress: dict[str, Any]) -> dict[str, Any]:
    return {k: progress.get(k) for k in ("iteration", "total_iterations", "eta_s", "success_rate", "position_error_m")}


def _next_step(s: JobStatus) -> str | None:
    ref = s.run_id or s.job_id
    if s.state in ACTIVE:
        return "still running: poll again in 30-60 s"
    if s.state == "succeeded" and s.kind == "train":
        return f"evaluate_policy(run_id='{s.job_id}') then export_policy(run_id='{s.job_id}')"
    if s.state == "succeeded" and s.kind in ("evaluate", "export"):
        return f"the policy is exported in {s.run_dir}/exported: run_policy_in_sim(policy='{ref}') or start_gateway"
    if s.state == "failed":
        return "read error and console_tail, fix the cause, and start again"
    if s.state == "orphaned":
        return "its supervisor died; training can be continued by starting a new run (checkpoints are kept)"
    return None

