"""``scripts/sweep.py``: the sweep's driver. Parses the request, checks the space, starts (or connects to) Ray,
runs the Tuner, and leaves the sweep folder's record saying how it ended."""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from roarm_lab.control.layout import SAFE_NAME, SweepFiles
from roarm_lab.rl.overrides import OverrideError
from roarm_lab.sweep.space import SweepSpace, check_space, default_space_file, defaults_in_space, parse_space, read_space
from roarm_lab.sweep.table import UNFINISHED, best_row
from roarm_lab.utils.io import atomic_write_json

INSTALL = 'pip install -e ".[sweep]"'
TUNE_DIR = "tune"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Sweep a task's PPO and reward settings on Ray Tune (Optuna search, ASHA "
                                "early stopping). Extra env.*=v / agent.*=v arguments hold for every trial.")
    p.add_argument("--task", default=None, help="task id (default: the project's default task)")
    p.add_argument("--space", help="search space file (default configs/sweeps/<task>.yaml)")
    p.add_argument("--num-samples", type=int, default=16, help="trials to run")
    p.add_argument("--max-iterations", type=int,
                   help="each trial's budget, in iterations of the task's default batch (default: its max_iterations); "
                        "a trial drawing other batch sizes gets the same number of samples")
    p.add_argument("--grace-iterations", type=int, help="ASHA's first rung, in the same units (default a quarter)")
    p.add_argument("--reduction-factor", type=float, default=3.0, help="ASHA keeps 1 in this many at each rung")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default: every core, one trial at a time)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPU fraction per trial (with --device cuda)")
    p.add_argument("--device", default="cpu", help="torch device of each trial's update")
    p.add_argument("--runtime", default="embedded", choices=("embedded", "isaaclab"))
    p.add_argument("--seed", type=int, default=42, help="every trial's training seed, and Optuna's")
    p.add_argument("--name", help="sweep folder name (default <task>_<time>)")
    p.add_argument("--resume", metavar="NAME_OR_DIR", help="continue an interrupted sweep (its name or folder)")
    p.add_argument("--address", help="an existing Ray cluster (ray://host:10001 or auto); default: a local Ray, "
                                     "dashboard off")
    p.add_argument("--log_root", default="logs/rsl_rl", help="root of the trials' run folders (train.py's default)")
    p.add_argument("--sweep_root", default="logs/sweeps", help="root of the sweep folders")
    return p


def _import_ray() -> Any:
    try:
        import optuna  # noqa: F401  (OptunaSearch needs it; its absence is the extra's)
        import ray
        import ray.tune.search.optuna  # noqa: F401
    except ImportError as err:
        raise OverrideError(f"sweeps need Ray Tune and Optuna ({err}): {INSTALL}") from None
    return ray


def _sweep_folder(args: argparse.Namespace, task: str) -> SweepFiles:
    """The sweep's folder: a new one named ``--name`` (or task and time), or the one ``--resume`` names. A plain
    name resolves only under ``--sweep_root``; a path must be an existing sweep folder."""
    root = Path(args.sweep_root)
    if args.resume:
        path = root / args.resume if SAFE_NAME.match(args.resume) else Path(args.resume)
        if not SweepFiles(path).record.is_file():
            known = sorted(p.name for p in root.glob("*") if (p / "sweep.json").is_file()) if root.is_dir() else []
            raise OverrideError(f"--resume {args.resume}: no sweep there (no {path / 'sweep.json'}); sweeps in "
                                f"{root}: {known[-10:]}")
        return SweepFiles(path)
    name = args.name or f"{task}_{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}"
    if not SAFE_NAME.match(name):
        raise OverrideError(f"--name {name!r} must be letters, digits, '_', '-' or '.'")
    path = root / name
    if path.exists():
        raise OverrideError(f"{path} exists; give another --name, or --resume {name} to continue it")
    return SweepFiles(path)


RECORD_CHECKS: dict[str, tuple[type | tuple[type, ...], float, float]] = {
    "num_samples": (int, 1, 100_000), "max_iterations": (int, 1, 100_000), "grace_iterations": (int, 1, 100_000),
    "seed": (int, 0, 2**31 - 1), "reduction_factor": ((int, float), 1.01, 100), "cpus_per_trial": ((int, float), 0.01, 4096),
    "gpus_per_trial": ((int, float), 0, 64)}
"""What a sweep's record must hold to be resumed: it is a file on disk, so it is checked like one."""


def _from_record(args: argparse.Namespace, files: SweepFiles) -> tuple[list[str], SweepSpace]:
    """The asked settings of a sweep being resumed, from its record, each checked; the space is the recorded one
    (an edited space file does not change a running sweep), parsed and checked again by the faces' rules."""
    from roarm_lab.control.runfiles import read_json

    bad = f"{files.record} cannot be resumed"
    record = read_json(files.record, "sweep record")
    if record is None:
        raise OverrideError(f"{bad}: it is not a JSON object")
    for key, (kinds, low, high) in RECORD_CHECKS.items():
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            raise OverrideError(f"{bad}: {key} must be a number from {low} to {high}, got {value!r}")
        setattr(args, key, value)
    fixed = record.get("fixed")
    if not isinstance(fixed, list) or not all(isinstance(t, str) for t in fixed):
        raise OverrideError(f"{bad}: 'fixed' must be a list of override strings")
    for key, allowed in (("task", None), ("device", DEVICE), ("runtime", None)):
        value = record.get(key)
        if not isinstance(value, str) or (allowed is not None and not allowed.match(value)):
            raise OverrideError(f"{bad}: {key} {value!r} is not valid")
        setattr(args, key, value)
    if args.runtime not in ("embedded", "isaaclab"):
        raise OverrideError(f"{bad}: runtime {args.runtime!r} is not valid")
    if str(Path(args.log_root).resolve()) != record.get("log_root"):
        raise OverrideError(f"the trials of {files.path.name} are in {record.get('log_root')}: resume with --log_root "
                            "set to that folder")
    space = parse_space({"space": record.get("space"), "target": record.get("target")}, bad)
    return fixed, space


DEVICE = re.compile(r"^(cpu|cuda(:\d{1,2})?)$")


def main(argv: list[str] | None = None) -> int:
    args, fixed = build_parser().parse_known_args(argv)
    if threading.current_thread() is threading.main_thread():  # a job stopped with SIGTERM ends as Ctrl-C does
        signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    bad = [t for t in fixed if "=" not in t or t.startswith("-")]
    try:
        if bad:
            raise OverrideError(f"unrecognized arguments {bad}; overrides look like agent.algorithm.gamma=0.98")
        ray = _import_ray()
        return _run(ray, args, fixed)
    except OverrideError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(ray: Any, args: argparse.Namespace, fixed: list[str]) -> int:
    from roarm_lab import DEFAULT_TASK
    from roarm_lab.registry import task_spec
    from roarm_lab.rl.run_setup import load_task_configs

    if args.resume:
        files = _sweep_folder(args, args.task or DEFAULT_TASK)
        fixed, space = _from_record(args, files)
    else:
        args.task = args.task or DEFAULT_TASK
        space = read_space(args.space or default_space_file(args.task))
    try:
        task_spec(args.task)
    except ValueError as err:
        raise OverrideError(str(err)) from None
    if not DEVICE.match(args.device):
        raise OverrideError(f"--device {args.device!r}: cpu, cuda or cuda:<n>")
    check_space(args.task, space, fixed)
    for flag, value in (("--num-samples", args.num_samples), ("--max-iterations", args.max_iterations),
                        ("--grace-iterations", args.grace_iterations)):
        if value is not None and value < 1:
            raise OverrideError(f"{flag} {value}: must be at least 1")
    if not args.reduction_factor > 1:
        raise OverrideError(f"--reduction-factor {args.reduction_factor}: must be above 1")
    env_cfg, agent_cfg, _ = load_task_configs(args.task, list(fixed))
    baseline = defaults_in_space(space, {"env": env_cfg, "agent": agent_cfg})
    iterations = args.max_iterations = args.max_iterations or int(agent_cfg.max_iterations)
    args.grace_iterations = min(iterations, args.grace_iterations or max(1, iterations // 4))
    args.cpus_per_trial = args.cpus_per_trial or float(os.cpu_count() or 1)
    per_iteration = int(env_cfg.scene.num_envs * agent_cfg.num_steps_per_env)
    budget = iterations * per_iteration
    if args.resume:
        _set_state(files, "running", pid=os.getpid())
    else:
        files = _sweep_folder(args, args.task)
        files.path.mkdir(parents=True)
        atomic_write_json(files.record, {
            "task": args.task, "space": {d.key: d.text() for d in space.dimensions}, "target": space.target,
            "fixed": list(fixed), "num_samples": args.num_samples, "max_iterations": iterations,
            "grace_iterations": args.grace_iterations, "reduction_factor": args.reduction_factor,
            "budget_env_steps": budget, "seed": args.seed, "cpus_per_trial": args.cpus_per_trial,
            "gpus_per_trial": args.gpus_per_trial, "device": args.device, "runtime": args.runtime,
            "log_root": str(Path(args.log_root).resolve()), "baseline": baseline, "created": time.time(),
            "pid": os.getpid(), "state": "running"})
    print(f"sweep {files.path.name}: {args.task}, {args.num_samples} trials of up to {budget:,} samples "
          f"({iterations} iterations of {per_iteration:,}), ASHA from {args.grace_iterations} iterations; "
          f"table: {files.trials_md}", flush=True)
    state = "interrupted"
    try:
        _tune(ray, args, files, space, fixed, baseline, budget, per_iteration)
        state = "finished"
    except KeyboardInterrupt:
        pass
    finally:
        rows = _rows(files)
        if len(rows) < args.num_samples or any(r.get("state") in UNFINISHED for r in rows):
            state = "interrupted"
        elif any(r.get("state") == "error" for r in rows):
            state = "finished with errors"
        _set_state(files, state)
        ray.shutdown()
    print(files.trials_md.read_text() if files.trials_md.is_file() else "no trial reported a result")
    if state == "interrupted":
        print(f"interrupted: continue with python scripts/sweep.py --resume {files.path.name}")
        return 130
    best = best_row(rows)
    print(f"best: {best['trial']} -> {files.best_overrides}" if best else "no trial finished")
    return 0 if best else 1


def _tune(ray: Any, args: argparse.Namespace, files: SweepFiles, space: SweepSpace, fixed: list[str],
          baseline: dict[str, Any] | None, budget: int, per_iteration: int) -> None:
    """Start (or join) Ray and run the Tuner, restored from the sweep folder when resuming."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from roarm_lab.sweep.trials import METRIC, TrialSetup, make_callback, make_scheduler, run_trial, tune_space

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cpus = args.cpus_per_trial
    ray.init(address=args.address, include_dashboard=False, log_to_driver=True,
             runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0", "RAY_USAGE_STATS_ENABLED": "0"}},
             **({} if args.address else {"num_cpus": max(int(math.ceil(cpus)), os.cpu_count() or 1)}))
    setup = TrialSetup(task=args.task, name=files.path.name, space=space, fixed=tuple(fixed), budget=budget,
                       log_root=str(Path(args.log_root).resolve()), seed=args.seed, device=args.device,
                       runtime=args.runtime, physics_threads=max(1, int(cpus)))
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup),
                                    {"cpu": cpus, "gpu": args.gpus_per_trial})
    tune_dir = files.path / TUNE_DIR
    if args.resume and tune.Tuner.can_restore(str(tune_dir)):
        tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, resume_errored=True,
                                   param_space=tune_space(space))  # the table writer comes back with it
    else:
        tuner = tune.Tuner(
            trainable, param_space=tune_space(space),
            tune_config=tune.TuneConfig(
                metric=METRIC, mode="max", num_samples=args.num_samples,
                search_alg=OptunaSearch(seed=args.seed, points_to_evaluate=[baseline] if baseline else None),
                scheduler=make_scheduler(budget, args.grace_iterations * per_iteration, args.reduction_factor, files)),
            run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(files.path),
                                      callbacks=[make_callback(files, space, budget, args.task, list(fixed), baseline)],
                                      verbose=0, failure_config=tune.FailureConfig(max_failures=0)))
    tuner.fit()  # Ctrl-C: Tune saves the experiment and returns what it has


def _rows(files: SweepFiles) -> list[dict[str, Any]]:
    from roarm_lab.control.runfiles import read_json

    rows = (read_json(files.trials_json, "trials table") or {}).get("trials")
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _set_state(files: SweepFiles, state: str, **extra: Any) -> None:
    from roarm_lab.control.runfiles import read_json

    record = read_json(files.record, "sweep record") or {}
    record.update(state=state, updated=time.time(), **extra)
    atomic_write_json(files.record, record)
