"""Runs and what their jobs are doing, from the files on disk (run folders, job records, console logs).

A run is named by its folder (``2026-01-01_12-00-00_reach``, what list_runs shows), by the id of the job that
trains it (``train-...``), or by a path inside the runs root. All three resolve to a folder under the runs root.
"""

from __future__ import annotations

import glob
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roarm_lab.jobs.paths import SAFE_NAME, PathError, ProjectPaths
from roarm_lab.jobs.runfiles import error_line, last_lines, read_json, read_tail, training_progress
from roarm_lab.jobs.store import JOB_ID, JobError, JobRecord, JobStore

CONSOLE = "train_console.log"


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
    def export_dir(self) -> Path:
        return self.path / "exported"


def newest_checkpoint(run_dir: Path) -> Path | None:
    from roarm_lab.rl.checkpoints import CheckpointError, latest_checkpoint

    try:
        return latest_checkpoint(run_dir)
    except CheckpointError:
        return None


def job_run_dir(job: JobRecord) -> Path | None:
    if job.run_dir:
        return Path(job.run_dir)
    if job.run_glob:
        found = sorted(glob.glob(job.run_glob))
        return Path(found[-1]) if found else None
    return None


def find_run(paths: ProjectPaths, store: JobStore, ref: str) -> Run:
    """A run from a run id, a training job id or a path inside the runs root."""
    if not isinstance(ref, str) or not ref:
        raise RunError("name a run: a run id from list_runs, a training job id, or a path inside the runs folder")
    if JOB_ID.match(ref):
        job = store.load(ref)
        run_dir = job_run_dir(job)
        if run_dir is None:
            raise RunError(f"job {ref} has no run folder yet (it {store.state(job)}); wait for its first iteration, "
                           "or check training_status")
        return Run(paths.confine(str(run_dir), "run folder"), job)
    if SAFE_NAME.match(ref) and "/" not in ref:
        hits = sorted(p for p in paths.runs.glob(f"*/{ref}") if p.is_dir())
        if len(hits) > 1:
            raise RunError(f"run id '{ref}' exists in several experiments: {[str(h) for h in hits]}; pass "
                           "<experiment>/<run>")
        if hits:
            return Run(paths.confine(str(hits[0]), "run folder"), _job_for(store, hits[0]))
    path = paths.confine(ref, "run")
    if path.is_file():
        path = path.parent if path.parent.name != "exported" else path.parent.parent
    if path.name == "exported":
        path = path.parent
    if not path.is_dir() or path.parent.parent != paths.runs.resolve():
        raise RunError(f"no run '{ref}' under {paths.runs}; list_runs shows the runs")
    return Run(path, _job_for(store, path))


def _job_for(store: JobStore, run_dir: Path) -> JobRecord | None:
    jobs = [j for j in store.all() if j.kind == "train" and (d := job_run_dir(j)) is not None
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
    ckpt = newest_checkpoint(found.path)
    if ckpt is None:
        raise RunError(f"run {found.id} has no checkpoint yet; wait for training to save one (training_status)")
    return found, ckpt


def resolve_export(paths: ProjectPaths, store: JobStore, ref: str) -> Path:
    """An exported/ folder with policy.json: from a run (its exported/) or a path to the folder or its policy.json."""
    try:
        run = find_run(paths, store, ref)
        folder = run.export_dir
    except (RunError, JobError):
        path = paths.confine(ref, "policy")
        folder = path.parent if path.is_file() else path
    if not (folder / "policy.json").is_file():
        raise RunError(f"no exported policy at {folder}: export it first (export_policy with that run_id)")
    return folder


def list_runs(paths: ProjectPaths, store: JobStore, experiment: str | None = None) -> list[dict[str, Any]]:
    jobs = {}
    for job in store.all():
        d = job_run_dir(job)
        if d is not None and job.kind == "train":
            jobs[str(d.resolve())] = job
    out = []
    if not paths.runs.is_dir():
        return out
    for run_dir in sorted(paths.runs.glob("*/*")):
        if not run_dir.is_dir() or (experiment and run_dir.parent.name != experiment):
            continue
        job = jobs.get(str(run_dir.resolve()))
        ckpt = newest_checkpoint(run_dir)
        metrics = read_json(run_dir / "exported" / "metrics.json", "metrics") or {}
        info = read_json(run_dir / "run.json", "run record") or {}
        out.append({
            "run_id": run_dir.name, "experiment": run_dir.parent.name, "path": rel_path(paths, run_dir),
            "task": info.get("task") or (job.task if job else None),
            "job_id": job.id if job else None, "job_state": store.state(job) if job else None,
            "checkpoints": len(list(run_dir.glob("model_*.pt"))),
            "newest_checkpoint": None if ckpt is None else rel_path(paths, ckpt),
            "finished": "final_checkpoint" in info, "exported": (run_dir / "exported" / "policy.json").is_file(),
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
    state = store.state(job)
    run_dir = job_run_dir(job)
    log = read_tail(Path(job.log))
    now = time.time()
    out: dict[str, Any] = {
        "job_id": job.id, "kind": job.kind, "state": state, "exit_code": job.exit_code, "task": job.task,
        "started": job.started or job.created, "ended": job.ended,
        "elapsed_s": round((job.ended or now) - (job.started or job.created), 1),
        "run_id": run_dir.name if run_dir else None, "run_dir": rel_path(paths, run_dir) if run_dir else None,
        "params": job.params, "progress": {}, "metrics": None, "newest_checkpoint": None,
        "error": job.error or (error_line(log) if state in ("failed", "orphaned", "stopped") else None),
        "console_tail": [], "log": rel_path(paths, Path(job.log)),
    }
    if state == "orphaned":
        out["error"] = ("the job's supervisor is gone without recording how the job ended (killed, or the machine "
                        "restarted); " + (out["error"] or "see console_tail"))
    if run_dir is not None and run_dir.is_dir():
        ckpt = newest_checkpoint(run_dir)
        out["newest_checkpoint"] = None if ckpt is None else rel_path(paths, ckpt)
        if job.kind == "train":
            console = read_tail(run_dir / CONSOLE)
            out["progress"] = training_progress(console)
            out["console_tail"] = last_lines(console, tail)
            info = read_json(run_dir / "run.json", "run record")
            if info:
                out["metrics"] = info.get("final_metrics")
        else:
            name = "metrics_randomized.json" if job.params.get("randomize") else "metrics.json"
            metrics = read_json(run_dir / "exported" / name, "metrics")
            if metrics and metrics.get("checkpoint") and state == "succeeded":
                out["metrics"] = metrics
    if not out["console_tail"]:
        out["console_tail"] = last_lines(log, tail)
    if job.kind == "real" and run_dir is not None:
        summaries = sorted(Path(run_dir).glob("*/summary.json"))
        if summaries:
            out["metrics"] = read_json(summaries[-1], "real-arm summary")
    return out
