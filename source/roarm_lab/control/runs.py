"""Runs and what their jobs are doing, from the files on disk (run folders, job records, progress records).

A run is named by its folder (``2026-01-01_12-00-00_reach``, what list_runs shows), by the id of the job that
trains it (``train-...``), or by a path inside the runs root. All three resolve to a folder under the runs root,
and everything served or loaded from it (a checkpoint, the export) must resolve there too, symlinks followed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roarm_lab.control import progress
from roarm_lab.control.jobs import JOB_ID, JobError, JobRecord, JobStore
from roarm_lab.control.layout import EXPORT_DIR, POLICY_SPEC, SAFE_NAME, ProjectPaths, RunFiles
from roarm_lab.control.runfiles import error_line, last_lines, read_json, read_tail


class RunError(ValueError):
    """An unknown run, or one without what is asked of it (a checkpoint, an export); says what to do."""


@dataclass
class Run:
    path: Path
    job: JobRecord | None = None

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def experiment(self) -> str:
        return self.path.parent.name

    @property
    def files(self) -> RunFiles:
        return RunFiles(self.path)

    @property
    def export_dir(self) -> Path:
        return self.files.export_dir

    def newest_checkpoint(self) -> Path | None:
        found = self.files.checkpoints()
        return found[0] if found else None


def job_run_dir(paths: ProjectPaths, job: JobRecord) -> Path | None:
    """The run folder of a job: recorded (checked when the record was read), or the one train.py made for it."""
    if job.run_dir:
        return Path(job.run_dir)
    experiment, name = job.params.get("experiment"), job.params.get("run_name")
    if isinstance(experiment, str) and isinstance(name, str):
        return paths.find_named_run(experiment, name)
    return None


def find_run(paths: ProjectPaths, store: JobStore, ref: str) -> Run:
    """A run from a run id, a training job id or a path inside the runs root."""
    if not isinstance(ref, str) or not ref:
        raise RunError("name a run: a run id from list_runs, a training job id, or a path inside the runs folder")
    if JOB_ID.match(ref):
        job = store.load(ref)
        run_dir = job_run_dir(paths, job)
        if run_dir is None:
            raise RunError(f"job {ref} has no run folder yet (it {job.state}); wait for its first iteration, or check "
                           "training_status")
        return _run(paths, paths.served(run_dir, "run folder"), job if job.kind == "train" else None, store)
    if SAFE_NAME.match(ref) and "/" not in ref:
        hits = sorted(p for p in paths.runs.glob(f"*/{ref}") if p.is_dir())
        if len(hits) > 1:
            raise RunError(f"run id '{ref}' exists in several experiments: {[str(h) for h in hits]}; pass "
                           "<experiment>/<run>")
        if hits:
            return _run(paths, paths.served(hits[0], "run folder"), None, store)
    path = paths.confine(ref, "run")
    if path.is_file():
        path = path.parent
    if path.name == EXPORT_DIR:
        path = path.parent
    return _run(paths, path, None, store, ref)


def _run(paths: ProjectPaths, path: Path, job: JobRecord | None, store: JobStore, ref: str | None = None) -> Run:
    if not path.is_dir() or path.parent.parent != paths.runs.resolve():
        raise RunError(f"no run '{ref or path.name}' under {paths.runs}; list_runs shows the runs")
    return Run(path, job or _job_for(paths, store, path))


def _job_for(paths: ProjectPaths, store: JobStore, run_dir: Path) -> JobRecord | None:
    jobs = [j for j in store.all() if j.kind == "train" and (d := job_run_dir(paths, j)) is not None
            and d.resolve() == run_dir.resolve()]
    return jobs[-1] if jobs else None


def resolve_checkpoint(paths: ProjectPaths, store: JobStore, run: str | None, checkpoint: str | None) -> tuple[Run, Path]:
    """The checkpoint to evaluate/export: the one named (confined), or the newest of the run."""
    if checkpoint:
        path = paths.confine(checkpoint, "checkpoint")
        if not path.is_file() or not path.name.endswith(".pt"):
            raise RunError(f"checkpoint '{checkpoint}' is not a model_<N>.pt file inside the runs folder")
        return find_run(paths, store, str(path.parent)), path
    if not run:
        raise RunError("give run_id (from list_runs or start_training) or checkpoint (a model_<N>.pt path)")
    found = find_run(paths, store, run)
    ckpt = found.newest_checkpoint()
    if ckpt is None:
        raise RunError(f"run {found.id} has no checkpoint yet; wait for training to save one (training_status)")
    return found, paths.served(ckpt, "checkpoint")


def resolve_export(paths: ProjectPaths, store: JobStore, ref: str) -> Path:
    """An exported/ folder with policy.json, inside the runs folder (symlinks followed): from a run (its
    exported/) or a path to the folder or to its policy.json."""
    try:
        folder = find_run(paths, store, ref).export_dir
    except (RunError, JobError):
        path = paths.confine(ref, "policy")
        folder = path.parent if path.is_file() else path
    if not (folder / POLICY_SPEC).is_file():
        making = [j for j in store.all() if j.kind in ("export", "evaluate") and j.run_dir
                  and Path(j.run_dir).resolve() == folder.parent.resolve() and store.counts_as_running(j)]
        if making:
            raise RunError(f"{making[-1].kind} job {making[-1].id} is writing this run's export now; wait for it "
                           f"(wait_for_job('{making[-1].id}')), then try again")
        raise RunError(f"no exported policy at {rel_path(paths, folder)}: export it first (export_policy with that "
                       "run_id)")
    folder = paths.served(folder, "exported policy folder")
    paths.served(folder / POLICY_SPEC, POLICY_SPEC)
    return folder


def list_runs(paths: ProjectPaths, store: JobStore, experiment: str | None = None) -> list[dict[str, Any]]:
    jobs = {}
    for job in store.all():
        d = job_run_dir(paths, job)
        if d is not None and job.kind == "train":
            jobs[str(d.resolve())] = job
    out: list[dict[str, Any]] = []
    if not paths.runs.is_dir():
        return out
    for run_dir in sorted(paths.runs.glob("*/*")):
        if not run_dir.is_dir() or (experiment and run_dir.parent.name != experiment):
            continue
        files = RunFiles(run_dir)
        job = jobs.get(str(run_dir.resolve()))
        ckpts = files.checkpoints()
        metrics = read_json(files.metrics(), "metrics") or {}
        info = read_json(files.record, "run record") or {}
        out.append({
            "run_id": run_dir.name, "experiment": run_dir.parent.name, "path": rel_path(paths, run_dir),
            "task": info.get("task") or (job.task if job else None),
            "job_id": job.id if job else None, "job_state": job.state if job else None,
            "checkpoints": len(ckpts), "newest_checkpoint": rel_path(paths, ckpts[0]) if ckpts else None,
            "finished": "final_checkpoint" in info, "exported": files.policy_spec.is_file(),
            "success_rate": metrics.get("success_rate"), "mean_final_error_m": metrics.get("mean_final_error_m"),
            "modified": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run_dir.stat().st_mtime)),
        })
    return out


def rel_path(paths: ProjectPaths, path: Path) -> str:
    """A path as shown to callers: relative to the project root when inside it."""
    try:
        return str(Path(path).resolve().relative_to(paths.root))
    except ValueError:
        return str(path)


def job_status(paths: ProjectPaths, store: JobStore, job_id: str, tail: int = 15) -> dict[str, Any]:
    """Everything a caller needs about a job, read from its record, its log and its run's own files."""
    job = store.load(job_id)
    run_dir = job_run_dir(paths, job)
    log = read_tail(store.log(job))
    now = time.time()
    out: dict[str, Any] = {
        "job_id": job.id, "kind": job.kind, "state": job.state, "exit_code": job.exit_code, "task": job.task,
        "started": job.started or job.created, "ended": job.ended,
        "elapsed_s": round((job.ended or now) - (job.started or job.created), 1),
        "run_id": run_dir.name if run_dir else None, "run_dir": rel_path(paths, run_dir) if run_dir else None,
        "params": job.params, "progress": {}, "metrics": None, "newest_checkpoint": None,
        "error": job.error if job.state == "lost" else (job.error or (
            error_line(log) if job.state in ("failed", "stopped") else None)),
        "console_tail": [], "log": rel_path(paths, store.log(job)),
    }
    if job.state == "lost" and store.command_alive(job):
        out["error"] = f"{out['error']}; its command (pid {job.child_pid}) is still running: stop the job to end it"
    if run_dir is not None and run_dir.is_dir():
        files = RunFiles(run_dir)
        ckpts = files.checkpoints()
        out["newest_checkpoint"] = rel_path(paths, ckpts[0]) if ckpts else None
        if job.kind == "train":
            total = job.params.get("max_iterations")
            out["progress"] = progress.latest(files.progress, total if isinstance(total, int) else None)
            out["console_tail"] = last_lines(read_tail(files.console), tail)
            info = read_json(files.record, "run record")
            if info:
                out["metrics"] = info.get("final_metrics")
        elif job.kind in ("evaluate", "export"):  # an export's own figures (export.json), an evaluation's metrics
            made = files.export_record if job.kind == "export" else files.metrics(bool(job.params.get("randomize")))
            metrics = read_json(made, made.name)
            if metrics and _made_by(metrics, job) and job.state == "succeeded":
                out["metrics"] = metrics
    if not out["console_tail"]:
        out["console_tail"] = last_lines(log, tail)
    if job.kind == "real" and run_dir is not None:
        summaries = sorted(Path(run_dir).glob("*/summary.json"))
        if summaries:
            out["metrics"] = read_json(summaries[-1], "real-arm summary")
    return out


def _made_by(metrics: dict[str, Any], job: JobRecord) -> bool:
    """The metrics file was written for this job's checkpoint (not an older evaluation's)."""
    return Path(str(metrics.get("checkpoint", ""))).name == job.params.get("checkpoint")
