"""``scripts/sweep.py``: the sweep's driver. Parses the request, checks the space, starts (or connects to) Ray,
runs the Tuner, and leaves the sweep folder's record saying how it ended."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from roarm_lab.control.layout import SAFE_NAME, SweepFiles
from roarm_lab.rl.overrides import OverrideError
from roarm_lab.sweep.space import check_space, default_space_file, defaults_in_space, read_space
from roarm_lab.sweep.table import UNFINISHED, best_row
from roarm_lab.utils.io import atomic_write_json
from roarm_lab.utils.provenance import REPO_ROOT

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
    p.add_argument("--log_root", default=str(REPO_ROOT / "logs" / "rsl_rl"), help="root of the trials' run folders")
    p.add_argument("--sweep_root", default=str(REPO_ROOT / "logs" / "sweeps"), help="root of the sweep folders")
    return p


def _import_ray() -> Any:
    try:
        import optuna  # noqa: F401  (OptunaSearch needs it; its absence is the extra's)
        import ray
        import ray.tune.search.optuna  # noqa: F401
    except ImportError as err:
        raise OverrideError(f"sweeps need Ray Tune and Optuna ({err}): {INSTALL}") from None
    return ray


def _sweep_folder(args: argparse.Namespace, task: str) -> tuple[SweepFiles, bool]:
    root = Path(args.sweep_root)
    if args.resume:
        given = Path(args.resume)
        path = given if given.is_dir() else root / args.resume
        if not SweepFiles(path).record.is_file():
            raise OverrideError(f"--resume {args.resume}: no sweep there (no {path / 'sweep.json'}); sweeps: "
                                f"{sorted(p.name for p in root.glob('*') if (p / 'sweep.json').is_file())}")
        return SweepFiles(path), True
    name = args.name or f"{task}_{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}"
    if not SAFE_NAME.match(name):
        raise OverrideError(f"--name {name!r} must be letters, digits, '_', '-' or '.'")
    path = root / name
    if path.exists():
        raise OverrideError(f"{path} exists; give another --name, or --resume {name} to continue it")
    return SweepFiles(path), False


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
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from roarm_lab.sweep.trials import METRIC, TrialSetup, make_callback, make_scheduler, run_trial, tune_space

    from roarm_lab import DEFAULT_TASK
    from roarm_lab.rl.run_setup import load_task_configs

    if args.resume:
        files, _ = _sweep_folder(args, args.task or DEFAULT_TASK)
        asked = json.loads(files.record.read_text())
        args.task, fixed, space_file = asked["task"], asked["fixed"], asked["space_file"]
        args.max_iterations, args.seed, args.num_samples = asked["max_iterations"], asked["seed"], asked["num_samples"]
        args.cpus_per_trial, args.gpus_per_trial = asked["cpus_per_trial"], asked["gpus_per_trial"]
    else:
        args.task = args.task or DEFAULT_TASK
        space_file = args.space or str(default_space_file(args.task, REPO_ROOT))
    from roarm_lab.registry import task_spec

    try:
        task_spec(args.task)
    except ValueError as err:
        raise OverrideError(str(err)) from None
    space = read_space(space_file)
    check_space(args.task, space, fixed)
    for flag, value in (("--num-samples", args.num_samples), ("--max-iterations", args.max_iterations),
                        ("--grace-iterations", args.grace_iterations)):
        if value is not None and value < 1:
            raise OverrideError(f"{flag} {value}: must be at least 1")
    env_cfg, agent_cfg, _ = load_task_configs(args.task, list(fixed))
    baseline = defaults_in_space(space, {"env": env_cfg, "agent": agent_cfg})
    iterations = args.max_iterations or int(agent_cfg.max_iterations)
    per_iteration = int(env_cfg.scene.num_envs * agent_cfg.num_steps_per_env)
    budget = iterations * per_iteration
    grace = min(iterations, args.grace_iterations or max(1, iterations // 4)) * per_iteration
    cpus = args.cpus_per_trial or float(os.cpu_count() or 1)
    if not args.resume:
        files, _ = _sweep_folder(args, args.task)
        files.path.mkdir(parents=True)
        atomic_write_json(files.record, {
            "task": args.task, "space_file": str(space_file), "space": {d.key: d.text() for d in space.dimensions},
            "target": space.target, "fixed": list(fixed), "num_samples": args.num_samples,
            "max_iterations": iterations, "budget_env_steps": budget, "seed": args.seed, "cpus_per_trial": cpus,
            "gpus_per_trial": args.gpus_per_trial, "baseline": baseline, "created": time.time(), "pid": os.getpid(),
            "state": "running"})
    else:
        _set_state(files, "running", pid=os.getpid())
    setup = TrialSetup(task=args.task, name=files.path.name, space=space, fixed=tuple(fixed), budget=budget,
                       log_root=str(Path(args.log_root).resolve()), seed=args.seed, device=args.device,
                       runtime=args.runtime, physics_threads=max(1, int(cpus)))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=args.address, include_dashboard=False, log_to_driver=True,
             runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0", "RAY_USAGE_STATS_ENABLED": "0"}},
             **({} if args.address else {"num_cpus": max(int(cpus), os.cpu_count() or 1)}))
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup),
                                    {"cpu": cpus, "gpu": args.gpus_per_trial})
    scheduler = make_scheduler(budget, grace, args.reduction_factor)
    callback = make_callback(files, space, budget, args.task, list(fixed), scheduler, baseline)
    tune_dir = files.path / TUNE_DIR
    print(f"sweep {files.path.name}: {args.task}, {args.num_samples} trials of up to {budget:,} samples "
          f"({iterations} iterations of {per_iteration:,}), ASHA from {grace:,}; table: {files.trials_md}")
    state = "interrupted"
    try:
        if args.resume and tune.Tuner.can_restore(str(tune_dir)):
            tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, resume_errored=True,
                                       param_space=tune_space(space))  # the table writer comes back with it
        else:
            tuner = tune.Tuner(
                trainable, param_space=tune_space(space),
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode="max", num_samples=args.num_samples,
                    search_alg=OptunaSearch(seed=args.seed, points_to_evaluate=[baseline] if baseline else None),
                    scheduler=scheduler),
                run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(files.path), callbacks=[callback],
                                          verbose=0, failure_config=tune.FailureConfig(max_failures=0)))
        tuner.fit()  # Ctrl-C: Tune saves the experiment and returns what it has
        state = "finished"
    except KeyboardInterrupt:
        pass
    finally:
        rows = json.loads(files.trials_json.read_text())["trials"] if files.trials_json.is_file() else []
        if len(rows) < args.num_samples or any(r["state"] in UNFINISHED for r in rows):
            state = "interrupted"
        elif any(r["state"] == "error" for r in rows):
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


def _set_state(files: SweepFiles, state: str, **extra: Any) -> None:
    record = json.loads(files.record.read_text())
    record.update(state=state, updated=time.time(), **extra)
    atomic_write_json(files.record, record)
