"""The Ray side of a sweep: one trial (an ordinary training reported to Tune), the search space in Tune's terms,
ASHA that remembers whom it stopped, and the callback that keeps the table current. Imported only with Ray."""

from __future__ import annotations

import contextlib
import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roarm_lab.control.layout import SweepFiles
from roarm_lab.rl.progress_record import SUCCESS_RECORD
from roarm_lab.sweep.space import SweepSpace
from roarm_lab.sweep.table import CLOCK, trial_row, write_tables
from roarm_lab.utils.io import atomic_write_json

METRIC = SUCCESS_RECORD


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

    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):  # train.py's one-line error becomes the trial's error
            code = train.main(argv + tokens, on_iteration=report)
    finally:
        sys.stderr.write(said.getvalue())
    if code != 0:
        reason = next((line for line in reversed(said.getvalue().splitlines()) if line.startswith("error:")),
                      f"train.py exited with {code}")
        raise RuntimeError(f"{reason} (overrides {' '.join(tokens)})")
    if last:  # the final checkpoint and run.json exist now: a stop decided on this report loses nothing
        tune.report({METRIC: 0.0, **last[0]})


def tune_space(space: SweepSpace) -> dict[str, Any]:
    from ray import tune

    make = {"loguniform": lambda v: tune.loguniform(*v), "uniform": lambda v: tune.uniform(*v),
            "randint": lambda v: tune.randint(v[0], v[1] + 1), "choice": lambda v: tune.choice(list(v))}
    return {d.key: make[d.kind](d.values) for d in space.dimensions}


def rows_from_trials(trials: list[Any], space: SweepSpace, budget: int, stopped: set[str],
                      baseline: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [trial_row(t.trial_id, t.status, t.config, t.last_result or {}, space, budget, error=_error_text(t),
                      stopped_early=t.trial_id in stopped, baseline=baseline) for t in trials]


def _error_text(trial: Any) -> str | None:
    if trial.status != "ERROR":
        return None
    path = getattr(trial, "error_file", None) or ""
    try:
        return Path(path).read_text()[-300:].strip().splitlines()[-1] if path else "failed"
    except OSError:
        return "failed"


def read_stopped(files: SweepFiles) -> set[str]:
    """The trials ASHA stopped short of the budget, as recorded in the sweep folder (``--resume`` keeps them:
    Tune restores its scheduler as it was created, not as it ran)."""
    from roarm_lab.control.runfiles import read_json

    ids = (read_json(files.stopped_early, "early stops") or {}).get("trials")
    return {t for t in ids if isinstance(t, str)} if isinstance(ids, list) else set()


def make_scheduler(budget: int, grace: int, reduction_factor: float, files: SweepFiles) -> Any:
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class RecordingASHA(ASHAScheduler):
        """ASHA on the samples clock that writes down whom it stopped short of the budget."""

        def __init__(self) -> None:
            super().__init__(time_attr=CLOCK, max_t=budget, grace_period=grace, reduction_factor=reduction_factor)

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP and result.get(CLOCK, budget) < budget:
                atomic_write_json(files.stopped_early, {"trials": sorted(read_stopped(files) | {trial.trial_id})})
            return action

    return RecordingASHA()


def make_callback(files: SweepFiles, space: SweepSpace, budget: int, task: str, fixed: list[str],
                  baseline: dict[str, Any] | None) -> Any:
    from ray.tune import Callback

    class TableWriter(Callback):
        """Rewrites the table as results arrive (at most every two seconds) and when trials end."""

        def __init__(self) -> None:
            self.written = 0.0
            self.ended = 0

        def _write(self, trials: list[Any], force: bool = False) -> None:
            if force or time.monotonic() - self.written > 2.0:
                write_tables(files, rows_from_trials(trials, space, budget, read_stopped(files), baseline),
                             space, task, fixed)
                self.written = time.monotonic()

        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
            self._write(trials)

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._write(trials, force=True)
            row = trial_row(trial.trial_id, "TERMINATED", trial.config, trial.last_result or {}, space, budget,
                            stopped_early=trial.trial_id in read_stopped(files), baseline=baseline)
            self.ended += 1
            print(f"trial {row['trial']} {row['state']}: success {row['success_rate'] or 0:.3f} after "
                  f"{row['env_steps'] or 0:,} samples ({self.ended} ended this session)", flush=True)

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._write(trials, force=True)

        def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
            self._write(trials, force=True)

    return TableWriter()
