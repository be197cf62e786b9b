"""Where everything lives: the project's folders, a run folder's files, job records; and the one check every path
from a caller passes (confined to a root, symlinks followed).

Nothing else in the control plane or its faces builds these paths. The training stack writes the same names
(``train_console.log``, ``progress.jsonl``, ``run.json``, ``exported/``), read from here.

A caller names runs, checkpoints and exported policies by id or by path; either way the path is resolved
(symlinks followed) and must land inside the runs root. ``..`` components, NUL bytes and over-long strings are
refused before anything touches the file system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from roarm_lab.utils.provenance import REPO_ROOT

MAX_PATH_CHARS = 1024
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
"""A run, experiment or folder name: no separators, no leading dot."""

CONSOLE = "train_console.log"
"""rsl_rl's full per-iteration report of a training run (the networks, the metrics blocks)."""
PROGRESS_FILE = "progress.jsonl"
"""One JSON record per training iteration: what every face shows of a training's progress."""
RUN_RECORD = "run.json"
"""Written when training ends: git hash, config hashes, final metrics, the final checkpoint."""
EXPORT_DIR = "exported"
POLICY_SPEC = "policy.json"
EXPORT_RECORD = "export.json"
"""Written by every export: the checkpoint it came from, the files, the sizes and how closely they match it."""
METRICS = "metrics.json"
METRICS_RANDOMIZED = "metrics_randomized.json"
CHECKPOINT = re.compile(r"^model_(\d+)\.pt$")
"""rsl_rl's checkpoint names (the whole name); any other file is someone's own and never pruned."""
BEST_RECORD = "best.json"
"""The run's best checkpoint (``checkpoint``, ``iteration``, ``metric``, ``success_rate``, ``position_error_m``)."""


class PathError(ValueError):
    """A path outside the folder it must be in, or malformed; the message names the folder."""


@dataclass(frozen=True)
class ProjectPaths:
    root: Path = REPO_ROOT
    logs: Path = REPO_ROOT / "logs"

    @classmethod
    def at(cls, root: Path | None = None, logs: Path | None = None) -> "ProjectPaths":
        root = Path(root or REPO_ROOT).resolve()
        return cls(root, Path(logs).resolve() if logs else root / "logs")

    @property
    def runs(self) -> Path:
        """Training runs: ``<runs>/<experiment>/<run>/``, exported policies in ``<run>/exported/``."""
        return self.logs / "rsl_rl"

    @property
    def sweeps(self) -> Path:
        """Sweeps: ``<sweeps>/<name>/`` (``SweepFiles``); their trials are ordinary runs under ``runs``."""
        return self.logs / "sweeps"

    @property
    def jobs(self) -> Path:
        return self.logs / "jobs"

    @property
    def sim(self) -> Path:
        return self.logs / "sim"

    @property
    def real(self) -> Path:
        return self.logs / "real"

    @property
    def gateway(self) -> Path:
        return self.logs / "gateway"

    @property
    def mcp(self) -> Path:
        return self.logs / "mcp"

    @property
    def panel(self) -> Path:
        return self.logs / "panel"

    @property
    def sim_log(self) -> Path:
        """The simulator service's output (the control plane's service)."""
        return self.sim / "service.log"

    @property
    def gateway_log(self) -> Path:
        return self.gateway / "gateway.log"

    @property
    def stop_file(self) -> Path:
        """The real-arm bridge torque-holds and exits when this file exists (the emergency stop writes it)."""
        return self.real / "STOP"

    def preset(self, name: str) -> Path:
        """``configs/presets/<name>.yaml`` of this checkout (a face names a preset, never a path)."""
        if not isinstance(name, str) or not SAFE_NAME.match(name) or name.endswith(".yaml"):
            raise PathError(f"preset {name!r} must be the name of a file in configs/presets/ without '.yaml', "
                            "e.g. reach_no_randomization")
        path = self.root / "configs" / "presets" / f"{name}.yaml"
        if not path.is_file() or path.is_symlink():
            known = sorted(p.stem for p in (self.root / "configs" / "presets").glob("*.yaml"))
            raise PathError(f"no preset '{name}' in configs/presets/; presets: {known}")
        return path

    def script(self, name: str) -> Path:
        path = self.root / "scripts" / name
        if not path.is_file():
            raise PathError(f"{path} is missing: the control plane runs the project's scripts from a source checkout "
                            "(pip install -e .)")
        return path

    # ------------------------------------------------------------------ job records
    def job_record(self, job_id: str) -> Path:
        return self.jobs / f"{job_id}.json"

    def job_log(self, job_id: str) -> Path:
        """A job's stdout and stderr (derived from its id: a record cannot point it elsewhere)."""
        return self.jobs / f"{job_id}.log"

    def real_run_dir(self, job_id: str) -> Path:
        return self.real / job_id

    # ------------------------------------------------------------------ runs
    def run_dir(self, experiment: str, run: str) -> Path:
        for name, what in ((experiment, "experiment"), (run, "run")):
            if not isinstance(name, str) or not SAFE_NAME.match(name):
                raise PathError(f"{what} name {name!r} must be letters, digits, '_', '-' or '.' (at most 100)")
        return self.runs / experiment / run

    def find_named_run(self, experiment: str, run_name: str) -> Path | None:
        """The newest ``<time>_<run_name>`` folder train.py made for this name, if any."""
        folder = self.runs / experiment
        if not SAFE_NAME.match(experiment) or not SAFE_NAME.match(run_name) or not folder.is_dir():
            return None
        found = sorted(p for p in folder.glob(f"*_{run_name}") if p.is_dir())
        return found[-1] if found else None

    def confine(self, value: str, what: str = "path") -> Path:
        """``value`` (relative to the runs root, or absolute) resolved, if it lies inside the runs root."""
        return confine(value, self.runs, what, self.root)

    def served(self, path: Path, what: str = "path") -> Path:
        """``path`` resolved (symlinks followed) if it lies inside the runs root: what may be served or loaded."""
        return served(path, self.runs, what)


@dataclass(frozen=True)
class RunFiles:
    """The files of one run folder, by name (what train.py and play.py write there)."""

    path: Path

    @property
    def console(self) -> Path:
        return self.path / CONSOLE

    @property
    def progress(self) -> Path:
        return self.path / PROGRESS_FILE

    @property
    def record(self) -> Path:
        return self.path / RUN_RECORD

    @property
    def best(self) -> Path:
        return self.path / BEST_RECORD

    @property
    def export_dir(self) -> Path:
        return self.path / EXPORT_DIR

    @property
    def policy_spec(self) -> Path:
        return self.export_dir / POLICY_SPEC

    @property
    def export_record(self) -> Path:
        return self.export_dir / EXPORT_RECORD

    def metrics(self, randomized: bool = False) -> Path:
        return self.export_dir / (METRICS_RANDOMIZED if randomized else METRICS)

    def checkpoints(self) -> list[Path]:
        """``model_<N>.pt`` files, newest (highest N) first."""
        if not self.path.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.path.iterdir() if (m := CHECKPOINT.match(p.name))]
        return [p for _, p in sorted(found, reverse=True)]


@dataclass(frozen=True)
class SweepFiles:
    """The files of one sweep folder (what ``scripts/sweep.py`` writes there)."""

    path: Path

    @property
    def record(self) -> Path:
        """What was asked (task, space, budget), the state (running, finished, interrupted) and the driver's pid."""
        return self.path / "sweep.json"

    @property
    def trials_json(self) -> Path:
        return self.path / "trials.json"

    @property
    def trials_csv(self) -> Path:
        return self.path / "trials.csv"

    @property
    def trials_md(self) -> Path:
        return self.path / "trials.md"

    @property
    def stopped_early(self) -> Path:
        """The trials ASHA stopped short of their budget (Tune's own state does not keep them across a resume)."""
        return self.path / "stopped_early.json"

    @property
    def best_overrides(self) -> Path:
        """The best trial's values as a preset: ``train.py --preset <this>``."""
        return self.path / "best_overrides.yaml"


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def confine(value: str, root: Path, what: str = "path", base: Path | None = None) -> Path:
    """A caller's path string resolved inside ``root`` (relative to it, or to ``base``, or absolute)."""
    if not isinstance(value, str) or not value or len(value) > MAX_PATH_CHARS or "\x00" in value:
        raise PathError(f"{what} must be a non-empty path of at most {MAX_PATH_CHARS} characters")
    raw = Path(value)
    if ".." in raw.parts:
        raise PathError(f"{what} '{value}' contains '..': name a run (list_runs) or a path inside {root}")
    root = root.resolve()
    candidates = [raw] if raw.is_absolute() else [root / raw] + ([base / raw] if base is not None else [])
    inside = [r for r in (c.resolve() for c in candidates) if _inside(r, root)]
    if inside:
        return next((r for r in inside if r.exists()), inside[0])
    raise PathError(f"{what} '{value}' is outside the project's run folders ({root}); name a run id from list_runs "
                    "or a path inside that folder (symbolic links are followed before the check)")


def served(path: Path, root: Path, what: str = "path") -> Path:
    """``path`` with every symlink resolved, if that lies inside ``root``; else PathError naming the folder."""
    resolved = Path(path).resolve()
    if not _inside(resolved, root.resolve()):
        raise PathError(f"{what} {path} resolves to {resolved}, outside the runs folder {root.resolve()}: only what "
                        "lies inside it (symbolic links followed) is served or loaded")
    return resolved
