"""Sweeps as jobs (``scripts/sweep.py`` under a supervisor) and their trials, read from the sweep's own files.

A sweep counts as a training for the job limit (its trials are trainings, and they take every core). What a
face may ask is the rule set of a training: the task, the budget in ranges, fixed overrides by the faces'
rules, and the task's own search space file (``configs/sweeps/<task>.yaml``), which is checked the same way.
"""

from __future__ import annotations

import secrets
import signal
from pathlib import Path
from typing import Any

from roarm_lab.control import rules
from roarm_lab.control.errors import ControlError, LimitError
from roarm_lab.control.jobs import ACTIVE, JOB_ID, JobStore
from roarm_lab.control.layout import SAFE_NAME, SweepFiles
from roarm_lab.control.models import JobStarted, SweepStatus, SweepTrial
from roarm_lab.control.runfiles import read_json
from roarm_lab.control.runs import rel_path
from roarm_lab.control.settings import LabSettings
from roarm_lab.control.training import MAX_RUN_NAME, validate_task
from roarm_lab.rl.overrides import OverrideError

TRIALS_SHOWN = 64


class Sweeps:
    def __init__(self, settings: LabSettings, store: JobStore):
        self.settings = settings
        self.paths = settings.paths
        self.store = store

    def start(self, task: str, num_samples: int, max_iterations: int | None, overrides: list[str],
              name: str = "") -> JobStarted:
        from roarm_lab.sweep.space import check_space, default_space_file, read_space

        validate_task(task)
        rules.SWEEP_SAMPLES.check("num_samples", num_samples)
        if max_iterations is not None:
            rules.MAX_ITERATIONS.check("max_iterations", max_iterations)
        if name and (len(name) > MAX_RUN_NAME or not SAFE_NAME.match(name)):
            raise ControlError(f"name '{name}' must be letters, digits, '_', '-' or '.' (at most {MAX_RUN_NAME})")
        space_file = default_space_file(task)
        if not space_file.is_file():
            raise ControlError(f"task {task} has no search space ({rel_path(self.paths, space_file)}); write one "
                               "(configs/sweeps/RoArm-Reach-v0.yaml shows the form)")
        try:
            rules.face_task_configs(task, list(overrides))
            check_space(task, read_space(space_file), list(overrides))
        except (OverrideError, LimitError) as err:
            raise ControlError(f"bad sweep: {err}") from None
        sweep = f"{name or 'sweep'}-{secrets.token_hex(2)}"
        cmd = [self.settings.python, str(self.paths.script("sweep.py")), "--task", task, "--num-samples",
               str(num_samples), "--name", sweep, "--sweep_root", str(self.paths.sweeps), "--log_root",
               str(self.paths.runs)]
        cmd += ["--max-iterations", str(max_iterations)] * (max_iterations is not None)
        cmd += list(overrides)
        record = self.store.start("sweep", cmd, cwd=self.paths.root, task=task, params={
            "sweep": sweep, "num_samples": num_samples, "max_iterations": max_iterations,
            "overrides": list(overrides)})
        return JobStarted(job_id=record.id, run_id=sweep, kind="sweep", state=record.state,
                          log=rel_path(self.paths, self.store.log(record)),
                          next=f"sweep_status('{record.id}') lists its trials as they run; each trial is a run "
                               f"(list_runs); stop_sweep stops it, start_sweep(resume='{sweep}') continues it")

    def resume(self, ref: str) -> JobStarted:
        """Continue a stopped or interrupted sweep in its own folder (``scripts/sweep.py --resume``)."""
        job = self._job(ref) or (self._newest_job(ref) if isinstance(ref, str) and SAFE_NAME.match(ref) else None)
        if job is None:
            raise ControlError(f"'{ref}' is neither a sweep job id nor a sweep name (sweep_status names them)")
        if self.store.counts_as_running(job):
            raise ControlError(f"sweep job {job.id} is still running; there is nothing to resume")
        name = job.params.get("sweep")
        asked = read_json(SweepFiles(self.paths.sweeps / str(name)).record, "sweep record") if isinstance(name, str) \
            and SAFE_NAME.match(name) else None
        if not asked:
            raise ControlError(f"sweep job {job.id} left no sweep folder to resume; start a new sweep")
        if asked.get("state") == "finished":
            raise ControlError(f"sweep {name} finished; its table is final (sweep_status), start a new one for more")
        cmd = [self.settings.python, str(self.paths.script("sweep.py")), "--resume", name, "--sweep_root",
               str(self.paths.sweeps), "--log_root", str(self.paths.runs)]
        record = self.store.start("sweep", cmd, cwd=self.paths.root, task=job.task,
                                  params={**job.params, "resumed_from": job.id})
        return JobStarted(job_id=record.id, run_id=name, kind="sweep", state=record.state,
                          log=rel_path(self.paths, self.store.log(record)),
                          next=f"sweep_status('{record.id}') follows it; finished trials are kept")

    def recent(self, limit: int = 3) -> list[SweepStatus]:
        """The newest sweeps (by their newest job), for a face's list."""
        jobs = sorted((j for j in self.store.all() if j.kind == "sweep"), key=lambda j: j.created, reverse=True)
        seen, out = set(), []
        for job in jobs:
            if job.params.get("sweep") in seen:
                continue
            seen.add(job.params.get("sweep"))
            try:
                out.append(self.status(job.id))
            except (ControlError, ValueError):  # a damaged sweep folder hides that sweep, not the others
                continue
            if len(out) >= limit:
                break
        return out

    def status(self, ref: str) -> SweepStatus:
        """A sweep by job id or sweep name: the job's state and the trials so far, from the sweep's files (checked
        field by field: they are files on disk)."""
        job = self._job(ref)
        name = job.params.get("sweep") if job is not None else ref
        if not isinstance(name, str) or not SAFE_NAME.match(name):
            raise ControlError(f"'{ref}' is neither a sweep job id nor a sweep name")
        if job is None:
            job = self._newest_job(name)
        files = SweepFiles(self.paths.sweeps / name)
        asked = read_json(files.record, "sweep record") or {}
        table = read_json(files.trials_json, "trials table") or {}
        if job is None and not asked:
            known = sorted(p.name for p in self.paths.sweeps.glob("*") if (p / "sweep.json").is_file()) \
                if self.paths.sweeps.is_dir() else []
            raise ControlError(f"no sweep '{ref}'; sweeps: {known[-10:]}")
        rows = table.get("trials") if isinstance(table.get("trials"), list) else []
        rows = [r for r in rows if isinstance(r, dict)]
        keys = [k for k in table.get("keys", []) if isinstance(k, str)] if isinstance(table.get("keys"), list) else []
        trials = [SweepTrial(trial=_text(r.get("trial")), state=_text(r.get("state")),
                             values={k: r.get(k) for k in keys if _plain(r.get(k))},
                             success_rate=_number(r.get("success_rate")), error_m=_number(r.get("error_m")),
                             env_steps=_number(r.get("env_steps")), samples_to_target=_number(r.get("samples_to_target")),
                             run_id=_run_id(r.get("run_dir")), baseline=r.get("baseline") is True) for r in rows]
        ended = [t for t in trials if t.state not in ("pending", "running")]
        scored = [t for t in ended if t.success_rate is not None]
        best = files.best_overrides
        state = self.store.settle(job).state if job is not None else "finished"
        sweep_state = _text(asked.get("state")) if asked.get("state") is not None else None
        if sweep_state == "running" and state not in ACTIVE:  # its driver died before it could say how it ended
            sweep_state = "interrupted"
        return SweepStatus(sweep=name, job_id=job.id if job else None, state=state, sweep_state=sweep_state,
                           task=_text(asked.get("task")) if asked.get("task") else (job.task if job else None),
                           num_samples=_whole(asked.get("num_samples")), budget_env_steps=_whole(asked.get("budget_env_steps")),
                           target=_number(table.get("target")), trials_total=len(trials), trials_ended=len(ended),
                           best_success_rate=max((t.success_rate for t in scored), default=None),
                           trials=trials[-TRIALS_SHOWN:],
                           best_overrides=rel_path(self.paths, best) if best.is_file() else None,
                           log=rel_path(self.paths, self.store.log(job)) if job else None)

    def stop(self, ref: str) -> SweepStatus:
        """Ctrl-C to the sweep: Ray Tune saves the experiment, stops the trials, and ``resume`` continues it."""
        job = self._job(ref) or (self._newest_job(ref) if isinstance(ref, str) and SAFE_NAME.match(ref) else None)
        if job is None:
            raise ControlError(f"'{ref}' is neither a sweep job id nor a sweep name (sweep_status names them)")
        if not self.store.signal_command(job, signal.SIGINT):
            raise ControlError(f"sweep job {job.id} is not running (it {job.state}); nothing to stop")
        return self.status(job.id)

    def _newest_job(self, name: str) -> Any:
        jobs = [j for j in self.store.all() if j.kind == "sweep" and j.params.get("sweep") == name]
        return max(jobs, key=lambda j: j.created) if jobs else None

    def _job(self, ref: str) -> Any:
        if not isinstance(ref, str) or not JOB_ID.match(ref):
            return None
        job = self.store.load(ref)
        if job.kind != "sweep":
            raise ControlError(f"{ref} is a {job.kind} job, not a sweep")
        return job


def _text(value: Any) -> str:
    return value[:100] if isinstance(value, str) else str(value)[:100]


def _plain(value: Any) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool) and len(str(value)) <= 100


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _run_id(run_dir: Any) -> str | None:
    return Path(run_dir).name if isinstance(run_dir, str) and run_dir else None
