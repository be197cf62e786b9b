"""Hyperparameter sweeps on Ray Tune (``scripts/sweep.py`` calls ``main``): Optuna proposes, ASHA stops.

Each trial is one ordinary training (``roarm_lab.rl.train.main``) in a Ray worker, writing a normal run folder
(``logs/rsl_rl/<experiment>/<time>_<sweep>-<trial>``) that play, export and the faces accept. The training loop
reports every iteration's progress record to Tune itself (``train.main(on_iteration=...)``), nothing is parsed
from console text. Trials get the same budget of samples, not of iterations: ASHA's clock is ``env_steps``, so a
trial that draws bigger batches is compared with the others at the same number of samples.

The sweep folder (``logs/sweeps/<name>/``) holds ``sweep.json`` (what was asked, the state), Ray's experiment
(``tune/``, what ``--resume`` restores), and the table of trials, rewritten as results arrive: ``trials.json``,
``trials.csv``, ``trials.md`` and ``best_overrides.yaml``, a preset ``train.py --preset`` accepts.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from roarm_lab.control.layout import SAFE_NAME, SweepFiles
from roarm_lab.rl.overrides import OverrideError
from roarm_lab.rl.progress_record import ERROR_RECORD, SUCCESS_RECORD
from roarm_lab.rl.sweep_space import SweepSpace, check_space, default_space_file, read_space
from roarm_lab.utils.io import atomic_write_json, atomic_write_text
from roarm_lab.utils.provenance import REPO_ROOT

INSTALL = 'pip install -e ".[sweep]"'
METRIC = SUCCESS_RECORD
CLOCK = "env_steps"
TUNE_DIR = "tune"
UNFINISHED = ("pending", "running", "paused", "interrupted")


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


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a sweep shares (picklable: it travels to Ray's workers)."""

    task: str
    name: str
    space: SweepSpace
    fixed: tuple[str, ...]
    budget: int
    """Samples (environment steps, all ranks) each trial may use."""
    log_root: str
    seed: int
    device: str
    runtime: str
    physics_threads: int


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """One Tune trial: a normal training whose every iteration is reported to Tune. A trial Tune restarts after an
    interruption continues its own run folder from the newest checkpoint."""
    from ray import tune

    from roarm_lab.rl import train
    from roarm_lab.rl.checkpoints import CheckpointError, latest_checkpoint
    from roarm_lab.rl.run_setup import load_task_configs

    run_name = f"{setup.name}-{tune.get_context().get_trial_id()}"
    tokens = list(setup.fixed) + setup.space.tokens({d.key: config[d.key] for d in setup.space.dimensions})
    env_cfg, agent_cfg, _ = load_task_configs(setup.task, tokens)
    iterations = math.ceil(setup.budget / (env_cfg.scene.num_envs * agent_cfg.num_steps_per_env))
    argv = ["--task", setup.task, "--log_root", setup.log_root, "--run_name", run_name, "--no-progress",
            "--max_iterations", str(iterations), "--seed", str(setup.seed), "--device", setup.device,
            "--runtime", setup.runtime, "--physics_threads", str(setup.physics_threads)]
    folder = Path(setup.log_root) / agent_cfg.experiment_name
    earlier = sorted(folder.glob(f"*_{run_name}")) if folder.is_dir() else []
    if earlier:
        try:
            argv += ["--resume", str(latest_checkpoint(earlier[-1]))]
        except CheckpointError:
            pass  # stopped before its first checkpoint: start again in a new folder

    last: list[dict[str, Any]] = []

    def report(record: dict[str, Any]) -> None:
        if record["iteration"] + 1 >= iterations:  # the last one waits until the run has written its files
            last[:] = [record]
        else:
            tune.report({METRIC: 0.0, **record})

    code = train.main(argv + tokens, on_iteration=report)
    if code != 0:
        raise RuntimeError(f"train.py exited with {code} for overrides {tokens}; see the trial's output")
    if last:  # the final checkpoint and run.json exist now: a stop decided on this report loses nothing
        tune.report({METRIC: 0.0, **last[0]})


def _tune_space(space: SweepSpace) -> dict[str, Any]:
    from ray import tune

    make = {"loguniform": lambda v: tune.loguniform(*v), "uniform": lambda v: tune.uniform(*v),
            "randint": lambda v: tune.randint(v[0], v[1] + 1), "choice": lambda v: tune.choice(list(v))}
    return {d.key: make[d.kind](d.values) for d in space.dimensions}


# ---------------------------------------------------------------------- the table of trials
def samples_to_target(run_dir: str | None, target: float, per_iteration: float | None) -> int | None:
    """Samples until the run's training success rate first reached ``target`` (from its progress.jsonl)."""
    from roarm_lab.control.layout import RunFiles
    from roarm_lab.control.progress import records

    if not run_dir or not per_iteration:
        return None
    for record in records(RunFiles(Path(run_dir)).progress, max_bytes=64 * 1024 * 1024):
        if (record.get(SUCCESS_RECORD) or 0.0) >= target:
            return int(round((int(record.get("iteration", 0)) + 1) * per_iteration))
    return None


def trial_row(trial_id: str, status: str, config: dict[str, Any], last: dict[str, Any], space: SweepSpace,
              budget: int, error: str | None = None, stopped_early: bool = False) -> dict[str, Any]:
    """One row of the table: the trial's values, where it stands and what it reached. A trial that ended short of
    its budget without ASHA stopping it was interrupted (``--resume`` continues it)."""
    steps = last.get(CLOCK)
    iteration = last.get("iteration")
    per_iteration = steps / (iteration + 1) if steps and iteration is not None else None
    if error:
        state = "error"
    elif steps is not None and steps >= budget:
        state = "complete"
    elif stopped_early:
        state = "stopped early (ASHA)"
    elif status in ("PENDING", "RUNNING", "PAUSED"):
        state = status.lower()
    else:
        state = "interrupted"
    return {"trial": trial_id, "state": state, **{d.key: config.get(d.key) for d in space.dimensions},
            "success_rate": last.get(SUCCESS_RECORD), "error_m": last.get(ERROR_RECORD), "iterations":
            None if iteration is None else iteration + 1, "env_steps": steps,
            "samples_to_target": samples_to_target(last.get("run_dir"), space.target, per_iteration),
            "run_dir": last.get("run_dir"), "error": error}


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trial with the highest final success rate (to 0.01); among equals, the fewest samples to the target."""
    done = [r for r in rows if r["state"] in ("complete", "stopped early (ASHA)") and r["success_rate"] is not None]
    if not done:
        return None
    return min(done, key=lambda r: (-round(r["success_rate"], 2), r["samples_to_target"] or math.inf))


def write_tables(files: SweepFiles, rows: list[dict[str, Any]], space: SweepSpace, task: str, fixed: list[str]) -> None:
    """trials.json / .csv / .md and the best trial's overrides, each written atomically."""
    atomic_write_json(files.trials_json, {"task": task, "target": space.target, "keys": [d.key for d in space.dimensions],
                                          "trials": rows, "updated": time.time()})
    columns = list(rows[0]) if rows else ["trial"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(files.trials_csv, text.getvalue())
    atomic_write_text(files.trials_md, markdown(rows, space))
    best = best_row(rows)
    if best is not None:
        values = {d.key: best[d.key] for d in space.dimensions}
        head = (f"# The best trial ({best['trial']}) of sweep {files.path.name} on {task}: training success "
                f"{best['success_rate']:.3f} after {best['env_steps']} samples"
                + (f", {space.target:g} first at {best['samples_to_target']}" if best["samples_to_target"] else "")
                + f".\n# python scripts/train.py --task {task} --preset {files.best_overrides}"
                + "".join(f"\n# with the sweep's fixed override {t}" for t in fixed) + "\n")
        atomic_write_text(files.best_overrides, head + yaml.safe_dump(values, sort_keys=False))


def markdown(rows: list[dict[str, Any]], space: SweepSpace) -> str:
    short = {d.key: d.key.split(".")[-1] for d in space.dimensions}
    cols = ["trial", "state", *short, "success_rate", "error_m", "env_steps", "samples_to_target"]
    head = [short.get(c, c) for c in cols]

    def cell(v: Any) -> str:
        if v is None:
            return ""
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _rows_from_trials(trials: list[Any], space: SweepSpace, budget: int, stopped: set[str]) -> list[dict[str, Any]]:
    return [trial_row(t.trial_id, t.status, t.config, t.last_result or {}, space, budget,
                      error=_error_text(t), stopped_early=t.trial_id in stopped) for t in trials]


def _error_text(trial: Any) -> str | None:
    if trial.status != "ERROR":
        return None
    path = getattr(trial, "error_file", None) or ""
    try:
        return Path(path).read_text()[-300:].strip().splitlines()[-1] if path else "failed"
    except OSError:
        return "failed"


# ---------------------------------------------------------------------- the driver
def _make_scheduler(budget: int, grace: int, reduction_factor: float) -> Any:
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class RecordingASHA(ASHAScheduler):
        """ASHA on the samples clock, remembering whom it stopped short of the budget (saved with the experiment,
        so the table tells an early stop from an interruption after ``--resume`` too)."""

        def __init__(self) -> None:
            super().__init__(time_attr=CLOCK, max_t=budget, grace_period=grace, reduction_factor=reduction_factor)
            self.stopped_early: set[str] = set()

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP and result.get(CLOCK, budget) < budget:
                self.stopped_early.add(trial.trial_id)
            return action

    return RecordingASHA()


def _make_callback(files: SweepFiles, space: SweepSpace, budget: int, task: str, fixed: list[str],
                   scheduler: Any) -> Any:
    from ray.tune import Callback

    class TableWriter(Callback):
        """Rewrites the table as results arrive (at most every two seconds) and when trials end."""

        def __init__(self) -> None:
            self.written = 0.0
            self.ended = 0

        def _write(self, trials: list[Any], force: bool = False) -> None:
            if force or time.monotonic() - self.written > 2.0:
                write_tables(files, _rows_from_trials(trials, space, budget, scheduler.stopped_early), space, task,
                             fixed)
                self.written = time.monotonic()

        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
            self._write(trials)

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._write(trials, force=True)
            row = trial_row(trial.trial_id, "TERMINATED", trial.config, trial.last_result or {}, space, budget,
                            stopped_early=trial.trial_id in scheduler.stopped_early)
            self.ended += 1
            print(f"trial {row['trial']} {row['state']}: success {row['success_rate'] or 0:.3f} after "
                  f"{row['env_steps'] or 0:,} samples ({self.ended} ended this session)", flush=True)

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._write(trials, force=True)

        def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
            self._write(trials, force=True)

    return TableWriter()


def _import_ray() -> Any:
    try:
        import optuna  # noqa: F401
        import ray
        from ray.tune.search.optuna import OptunaSearch  # noqa: F401
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
            "gpus_per_trial": args.gpus_per_trial, "created": time.time(), "pid": os.getpid(), "state": "running"})
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
    scheduler = _make_scheduler(budget, grace, args.reduction_factor)
    callback = _make_callback(files, space, budget, args.task, list(fixed), scheduler)
    tune_dir = files.path / TUNE_DIR
    print(f"sweep {files.path.name}: {args.task}, {args.num_samples} trials of up to {budget:,} samples "
          f"({iterations} iterations of {per_iteration:,}), ASHA from {grace:,}; table: {files.trials_md}")
    state = "interrupted"
    try:
        if args.resume and tune.Tuner.can_restore(str(tune_dir)):
            tuner = tune.Tuner.restore(str(tune_dir), trainable, resume_unfinished=True, resume_errored=True,
                                       param_space=_tune_space(space))  # the table writer comes back with it
        else:
            tuner = tune.Tuner(
                trainable, param_space=_tune_space(space),
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode="max", num_samples=args.num_samples,
                    search_alg=OptunaSearch(seed=args.seed),
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
