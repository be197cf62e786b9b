"""Training, evaluation and export as jobs (``scripts/train.py`` and ``scripts/play.py`` under a supervisor),
and their status from the run's own files. Every call returns at once; the caller polls."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from roarm_lab.control import progress, rules
from roarm_lab.control.errors import ControlError
from roarm_lab.control.jobs import ACTIVE, JOB_ID, JobStore
from roarm_lab.control.layout import CHECKPOINT, SAFE_NAME
from roarm_lab.control.models import ExportResult, JobStarted, JobStatus, RunsResult, TrainingPlan
from roarm_lab.control.runfiles import last_lines, read_json, read_tail
from roarm_lab.control.runs import Run, RunError, find_run, job_status, list_runs, rel_path, resolve_checkpoint
from roarm_lab.control.settings import LabSettings
from roarm_lab.rl.overrides import OverrideError

MAX_RUN_NAME = 60


def validate_task(task: str) -> None:
    from roarm_lab.registry import task_spec

    try:
        task_spec(task)
    except ValueError as err:
        raise ControlError(str(err)) from None


def _steps_per_iteration(task: str) -> int:
    from roarm_lab.registry import load_cfg_from_registry

    return int(load_cfg_from_registry(task, "rsl_rl_cfg_entry_point").num_steps_per_env)


def experiment_of(task: str) -> str:
    from roarm_lab.registry import load_cfg_from_registry

    return load_cfg_from_registry(task, "rsl_rl_cfg_entry_point").experiment_name


class Training:
    def __init__(self, settings: LabSettings, store: JobStore):
        self.settings = settings
        self.paths = settings.paths
        self.store = store

    # ------------------------------------------------------------------ start
    def start_training(self, task: str, num_envs: int | None, max_iterations: int | None, overrides: list[str],
                       run_name: str, seed: int | None, preset: str | None = None) -> JobStarted:
        validate_task(task)
        if preset:  # its entries go first and pass the same rules as the overrides typed after them
            from roarm_lab.rl.preset_files import load

            try:
                tokens, _ = load([str(self.paths.preset(preset))], [])
            except (OverrideError, ValueError) as err:
                raise ControlError(str(err)) from None
            overrides = tokens + list(overrides)
        for name, value, allowed in (("num_envs", num_envs, rules.NUM_ENVS),
                                     ("max_iterations", max_iterations, rules.MAX_ITERATIONS),
                                     ("seed", seed, rules.SEED)):
            if value is not None:
                allowed.check(name, value)
        if run_name and (len(run_name) > MAX_RUN_NAME or not SAFE_NAME.match(run_name)):
            raise ControlError(f"run_name '{run_name}' must be letters, digits, '_', '-' or '.' (at most "
                               f"{MAX_RUN_NAME})")
        try:
            env_cfg, agent_cfg, applied = rules.face_task_configs(
                task, list(overrides), settings={"env.scene.num_envs": num_envs, "agent.max_iterations": max_iterations})
        except OverrideError as err:
            raise ControlError(f"bad override: {err}") from None
        name = f"{run_name or 'mcp'}-{secrets.token_hex(2)}"
        cmd = [self.settings.python, str(self.paths.script("train.py")), "--task", task, "--log_root",
               str(self.paths.runs), "--run_name", name, "--no-progress"]
        cmd += ["--num_envs", str(num_envs)] * (num_envs is not None)
        cmd += ["--max_iterations", str(max_iterations)] * (max_iterations is not None)
        cmd += ["--seed", str(seed)] * (seed is not None)
        cmd += list(overrides)
        plan = self.plan(task, env_cfg.scene.num_envs, agent_cfg.max_iterations, applied)
        record = self.store.start("train", cmd, cwd=self.paths.root, task=task, params={
            "num_envs": env_cfg.scene.num_envs, "max_iterations": agent_cfg.max_iterations,
            "overrides": list(overrides), "applied": applied, "run_name": name, "seed": seed, "experiment": agent_cfg.experiment_name})
        return JobStarted(job_id=record.id, run_id=record.id, kind="train", state=record.state, plan=plan,
                          log=rel_path(self.paths, self.store.log(record)),
                          next=f"wait_for_job('{record.id}') follows it with progress; training_status gives "
                               "iteration, ETA and success rate; stop_training stops it")

    def plan(self, task: str, num_envs: int, iterations: int, applied: list[str], done: int = 0) -> TrainingPlan:
        """What a training will run, and how long it should take on this machine (from its last measured run)."""
        from roarm_lab.control.reports import expected_minutes

        minutes, basis = expected_minutes(self.paths, task, num_envs, max(0, iterations - done))
        return TrainingPlan(task=task, num_envs=num_envs, max_iterations=iterations, from_iteration=done,
                            env_steps=num_envs * max(0, iterations - done) * _steps_per_iteration(task),
                            expected_minutes=minutes, estimate_basis=basis, overrides=list(applied))

    def resume(self, ref: str, max_iterations: int | None) -> JobStarted:
        """Continue a run from its newest checkpoint, in its own folder, up to ``max_iterations`` (default: the
        total it was started with)."""
        run = self._run(ref)
        if run.job is not None and self.store.counts_as_running(run.job):
            raise ControlError(f"run {run.id} is still training (job {run.job.id}); wait for it or stop it first")
        newest = run.newest_checkpoint()
        if newest is None:
            raise ControlError(f"run {run.id} has no checkpoint to resume from; start a new training")
        info = read_json(run.files.record, "run record") or {}
        task = info.get("task") or (run.job.task if run.job else None) or self.settings.default_task
        validate_task(task)
        done = int(CHECKPOINT.match(newest.name).group(1))
        total = max_iterations if max_iterations is not None else (
            info.get("iterations") or (run.job.params.get("max_iterations") if run.job else None))
        if not isinstance(total, int):
            raise ControlError(f"how far to train run {run.id} is unknown; give max_iterations")
        rules.MAX_ITERATIONS.check("max_iterations", total)
        if total <= done + 1:
            raise ControlError(f"run {run.id} is at iteration {done} already; give max_iterations above {done + 1} "
                               f"(at most {int(rules.MAX_ITERATIONS.high)})")
        job = run.job.params if run.job else {}
        envs, seed = _whole(info.get("num_envs") or job.get("num_envs")), _whole(info.get("seed", job.get("seed")))
        tokens = [t for t in job.get("overrides") or [] if isinstance(t, str)]
        if info.get("overrides") and not tokens:
            raise ControlError(f"run {run.id} was trained with overrides from the command line; resume it there with "
                               f"the same overrides: python scripts/train.py --task {task} --resume {run.path} ...")
        try:  # the recorded overrides are data from disk: the faces' rules again
            _, _, applied = rules.face_task_configs(task, tokens, settings={"env.scene.num_envs": envs})
        except OverrideError as err:
            raise ControlError(f"run {run.id}'s recorded overrides are refused now: {err}") from None
        plan = self.plan(task, envs or 1024, total, applied, done)  # before anything starts
        cmd = [self.settings.python, str(self.paths.script("train.py")), "--task", task, "--log_root",
               str(self.paths.runs), "--resume", str(run.path), "--max_iterations", str(total), "--no-progress"]
        cmd += ["--num_envs", str(envs)] * (envs is not None) + ["--seed", str(seed)] * (seed is not None) + tokens
        record = self.store.start("train", cmd, cwd=self.paths.root, task=task, run_dir=run.path, params={
            "num_envs": envs, "max_iterations": total, "resumed_from": newest.name, "experiment": run.experiment,
            "overrides": tokens, "seed": seed})
        return JobStarted(job_id=record.id, run_id=run.id, kind="train", state=record.state, plan=plan,
                          log=rel_path(self.paths, self.store.log(record)),
                          next=f"wait_for_job('{record.id}') follows it; it continues in {run.id}")

    def delete(self, run: Run) -> str:
        """Remove the run folder the user confirmed (not while a job uses it)."""
        import shutil

        busy = [j.id for j in self.store.all() if self.store.counts_as_running(j) and j.run_dir
                and Path(j.run_dir).resolve() == run.path.resolve()]
        if run.job is not None and self.store.counts_as_running(run.job):
            busy.append(run.job.id)
        if busy:
            raise ControlError(f"run {run.id} is in use by job {busy[0]}; stop it first")
        folder = self.paths.served(run.path, "run folder")
        if folder.parent.parent != self.paths.runs.resolve():
            raise ControlError(f"{run.id} is not a run folder (logs/rsl_rl/<experiment>/<run>); nothing deleted")
        shutil.rmtree(folder)
        return run.id

    def compare(self, refs: list[str]) -> dict[str, Any]:
        from roarm_lab.control.reports import markdown_table, run_row

        rules.COMPARED_RUNS.check("number of runs", len(refs))
        rows = [run_row(self._run(r).path) for r in refs]
        return {"runs": rows, "table": markdown_table(rows)}

    def curves(self, refs: list[str]) -> tuple[bytes, list[str]]:
        from roarm_lab.control.reports import curves_png

        rules.COMPARED_RUNS.check("number of runs", len(refs))
        runs = [self._run(r) for r in refs]
        tasks = sorted({(read_json(r.files.record, "run record") or {}).get("task") or
                        (r.job.task if r.job else None) or "" for r in runs} - {""})
        try:
            png = curves_png([r.path for r in runs], " / ".join(tasks) or "training")
        except ValueError as err:
            raise ControlError(str(err)) from None
        return png, [r.id for r in runs]

    def _run(self, ref: str) -> Run:
        try:
            return find_run(self.paths, self.store, ref)
        except (RunError, ValueError) as err:
            raise ControlError(str(err)) from None

    def evaluate(self, run_id: str | None, checkpoint: str | None, episodes: int, randomize: bool) -> JobStarted:
        rules.EPISODES.check("episodes", episodes)
        run, ckpt = self._checkpoint(run_id, checkpoint)
        return self._play(run, ckpt, episodes, randomize, "evaluate")

    def export(self, run_id: str | None, checkpoint: str | None) -> ExportResult:
        run, ckpt = self._checkpoint(run_id, checkpoint)
        files = run.files
        present = sorted(p.name for p in files.export_dir.glob("*")) if files.export_dir.is_dir() else []
        made = read_json(files.export_record, "export record") or {}
        if files.policy_spec.is_file() and made.get("checkpoint") == ckpt.name \
                and files.policy_spec.stat().st_mtime >= ckpt.stat().st_mtime:
            return ExportResult(run_id=run.id, checkpoint=rel_path(self.paths, ckpt),
                                export_dir=rel_path(self.paths, files.export_dir), up_to_date=True, files=present)
        started = self._play(run, ckpt, 0, False, "export")
        return ExportResult(run_id=run.id, checkpoint=rel_path(self.paths, ckpt),
                            export_dir=rel_path(self.paths, files.export_dir), up_to_date=False, job_id=started.job_id,
                            files=present)

    def _checkpoint(self, run_id: str | None, checkpoint: str | None) -> tuple[Run, Any]:
        try:
            return resolve_checkpoint(self.paths, self.store, run_id, checkpoint)
        except (RunError, ValueError) as err:
            raise ControlError(str(err)) from None

    def _play(self, run: Run, ckpt: Any, episodes: int, randomize: bool, kind: str) -> JobStarted:
        info = read_json(run.files.record, "run record") or {}
        task = info.get("task") or (run.job.task if run.job else None) or self.settings.default_task
        validate_task(task)
        cmd = [self.settings.python, str(self.paths.script("play.py")), "--task", task, "--checkpoint", str(ckpt),
               "--no-progress"]
        if kind == "export":
            cmd += ["--export-only"]
        else:
            cmd += ["--episodes", str(episodes), "--num_envs", str(min(episodes, rules.EVAL_ENVS))]
            cmd += ["--randomize"] * randomize
        record = self.store.start(kind, cmd, cwd=self.paths.root, task=task, run_dir=run.path,
                                  params={"checkpoint": ckpt.name, "episodes": episodes, "randomize": randomize})
        return JobStarted(job_id=record.id, run_id=run.id, kind=kind, state=record.state,
                          log=rel_path(self.paths, self.store.log(record)),
                          next=f"wait_for_job('{record.id}'); when it has succeeded, " + (
                              "the export is in <run>/exported" if kind == "export" else
                              "metrics holds the success rate and errors"))

    def restart(self, job_id: str) -> JobStarted | ExportResult:
        """Start a failed, stopped or lost job again with its recorded settings (checked again like new ones)."""
        job = self.store.load(job_id)
        if self.store.counts_as_running(job):
            raise ControlError(f"job {job.id} is still running; there is nothing to restart")
        p = job.params
        if job.kind == "train":
            name = str(p.get("run_name") or "").rsplit("-", 1)[0]
            overrides = [o for o in p.get("overrides") or [] if isinstance(o, str) and not o.startswith("presets=")]
            return self.start_training(job.task or self.settings.default_task, p.get("num_envs"),
                                       p.get("max_iterations"), overrides, "" if name == "mcp" else name, p.get("seed"))
        if job.kind in ("evaluate", "export") and job.run_dir:
            run = find_run(self.paths, self.store, job.run_dir)
            ckpt = next((c for c in run.files.checkpoints() if c.name == p.get("checkpoint")), None)
            if ckpt is None:
                raise ControlError(f"checkpoint {p.get('checkpoint')} of run {run.id} is gone; pick another")
            if job.kind == "export":
                return self.export(None, str(ckpt))
            return self.evaluate(None, str(ckpt), p.get("episodes", 200), bool(p.get("randomize")))
        raise ControlError(f"a {job.kind} job is not restarted; start it again from its section")

    # ------------------------------------------------------------------ status
    def status(self, ref: str, tail: int = 15) -> JobStatus:
        try:
            if JOB_ID.match(ref or ""):
                return self._job_status(ref, tail)
            run = find_run(self.paths, self.store, ref)
        except (RunError, ValueError) as err:
            raise ControlError(str(err)) from None
        if run.job is not None:
            return self._job_status(run.job.id, tail)
        info = read_json(run.files.record, "run record")
        latest = progress.latest(run.files.progress)
        return JobStatus(job_id=None, kind="train", state="finished" if info else "unknown", run_id=run.id,
                         run_dir=rel_path(self.paths, run.path), metrics=info.get("final_metrics") if info else None,
                         console_tail=last_lines(read_tail(run.files.console), tail), **_progress_fields(latest),
                         next=None if not info else f"evaluate_policy(run_id='{run.id}') or export_policy(run_id='{run.id}')")

    def _job_status(self, job_id: str, tail: int) -> JobStatus:
        raw = job_status(self.paths, self.store, job_id, tail)
        fields = {k: raw[k] for k in ("job_id", "kind", "state", "exit_code", "task", "run_id", "run_dir",
                                      "elapsed_s", "newest_checkpoint", "metrics", "error", "console_tail")}
        status = JobStatus(**fields, **_progress_fields(raw["progress"]))
        if status.success_rate is None and raw["metrics"] and status.kind == "evaluate":
            status.success_rate = raw["metrics"].get("success_rate")
        status.next = _next_step(status)
        return status

    def stop(self, ref: str) -> JobStatus:
        try:
            job_id = ref if JOB_ID.match(ref or "") else getattr(find_run(self.paths, self.store, ref).job, "id", None)
            if job_id is None:
                raise ControlError(f"run {ref} has no job record: it was not started here, nothing to stop")
            if self.store.load(job_id).kind == "real":  # a SIGTERM would cut the bridge off before its torque-hold
                raise ControlError(f"{job_id} is a real-arm run: stop it with emergency_stop (it torque-holds the arm)")
            self.store.stop(job_id)
        except (RunError, ValueError) as err:
            raise ControlError(str(err)) from None
        return self._job_status(job_id, 10)

    def runs(self, task: str | None) -> RunsResult:
        experiment = None
        if task:
            validate_task(task)
            experiment = experiment_of(task)
        active = [{"job_id": j.id, "kind": j.kind, "state": j.state, "task": j.task}
                  for j in self.store.all() if self.store.counts_as_running(j)]
        return RunsResult(runs=list_runs(self.paths, self.store, experiment), active_jobs=active)

    def active(self, kinds: tuple[str, ...]) -> list[str]:
        """Ids of the running jobs of these kinds, oldest first (what the job limits count)."""
        return [j.id for j in self.store.all() if j.kind in kinds and self.store.counts_as_running(j)]


def _whole(value: Any) -> int | None:
    """A recorded count or seed, if it is one (run files are data anyone may have edited)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _progress_fields(latest: dict[str, Any]) -> dict[str, Any]:
    return {k: latest.get(k) for k in ("iteration", "total_iterations", "eta_s", "success_rate", "position_error_m")}


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
    if s.state == "lost":
        return "its supervisor ended without recording the end (error says how); checkpoints are kept: start again"
    return None
