"""The rules every request from a face obeys, each written once: limits, job limits and safe overrides.

A face (the MCP server, the panel) reads the ranges here for its schemas and forms; the core checks them. The
person at the keyboard (``scripts/train.py``) keeps Hydra's full power; a face gets this subset:

- an override's key must be one the task's config declares, and not a field that names code (``class_name``,
  ``func``, ...) or chooses where runs are written or logged;
- its value must parse to the type of the default it replaces: a number for a number, a short plain name for a
  name, a list of those for a list, a mapping with the same keys for a mapping of data; a ``None`` default
  accepts what its declared type allows. A mapping never replaces a configuration object, and a string never
  names an importable thing. ``null`` removes a term of a manager group (``env.rewards.goal=null``);
- limits are checked on the finished configuration, so an override cannot get round an argument's range, and
  the error names the key and the range.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from roarm_lab.control.errors import LimitError
from roarm_lab.rl.overrides import OverrideError


@dataclass(frozen=True)
class Range:
    """An inclusive range of a number a face may send."""

    low: float
    high: float
    integer: bool = True

    def check(self, name: str, value: Any) -> Any:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        whole = number and (not self.integer or isinstance(value, int))
        if not whole or not math.isfinite(value) or not self.low <= value <= self.high:
            kind = "a whole number" if self.integer else "a number"
            raise LimitError(f"{name} must be {kind} from {_fmt(self.low)} to {_fmt(self.high)}, got {value!r}")
        return value


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


# ---------------------------------------------------------------------- limits of the arguments a face sends
NUM_ENVS = Range(1, 8192)
MAX_ITERATIONS = Range(1, 100_000)
SEED = Range(0, 2**31 - 1)
SWEEP_SAMPLES = Range(1, 256)
"""Trials of one sweep a face may ask for."""
EPISODES = Range(1, 5000)
REAL_TARGETS = Range(1, 20)
SAVE_INTERVAL = Range(10, 100_000)
"""A face cannot make a run write a checkpoint every iteration (the runner also prunes old ones)."""
SETTLE_STEPS = Range(0, 600)
"""Control steps a joint move lets pass before it answers (30 = 1 s)."""
POLICY_STEPS = Range(1, 3000)
"""Control steps of one policy run in the simulator (100 s)."""
ROLLOUT_EPISODES = Range(1, 64)
RENDER_WIDTH = Range(64, 1920)
RENDER_HEIGHT = Range(64, 1080)
FILM_STEPS = Range(2, 900)
"""Control steps of a filmed rollout (30 s)."""
FILM_FRAMES = Range(2, 24)
WAIT_S = Range(0, 120, integer=False)
"""How long one call may wait for a job or a simulator run before it answers with the state so far."""
POLICY_WAIT_S = 20.0
"""A stepped simulator run is waited for this long by the call that started it (then it goes on; poll it)."""
LOG_LINES = Range(1, 200)
"""Lines of a log one call returns (a page; ask for the next with ``before``)."""
COMPARED_RUNS = Range(1, 8)
SIM_REQUEST_LIMITS: dict[tuple[str, str], Range] = {
    ("run_policy", "max_steps"): POLICY_STEPS, ("step", "steps"): Range(1, SETTLE_STEPS.high),
    ("record", "episodes"): ROLLOUT_EPISODES, ("render", "width"): RENDER_WIDTH, ("render", "height"): RENDER_HEIGHT,
    ("film", "steps"): FILM_STEPS, ("film", "frames"): FILM_FRAMES,
}
"""The numbers of a simulator request a face may send, checked by the core's simulator link."""
EXPORT_EPISODES = 64
"""play.py evaluates after exporting: an export job runs this many held-out episodes."""
EVAL_ENVS = 250
"""Environments an evaluation job steps at once (at most its episodes)."""

OVERRIDE_LIMITS: dict[str, Range] = {
    "env.scene.num_envs": NUM_ENVS,
    "agent.max_iterations": MAX_ITERATIONS,
    "agent.save_interval": SAVE_INTERVAL,
    "agent.seed": SEED,
    "env.seed": SEED,
    "agent.num_steps_per_env": Range(1, 512),
    "agent.algorithm.num_learning_epochs": Range(1, 100),
    "agent.algorithm.num_mini_batches": Range(1, 4096),
    "agent.actor.hidden_dims": Range(1, 2048),
    "agent.critic.hidden_dims": Range(1, 2048),
    "env.episode_length_s": Range(0.1, 600.0, integer=False),
    "env.decimation": Range(1, 100),
    "env.sim.dt": Range(1e-4, 0.1, integer=False),
}
"""Ranges checked on the finished configuration (a list's every element); keys absent from a task are skipped."""

# ---------------------------------------------------------------------- how many jobs run at once
JOB_LIMITS: dict[str, tuple[tuple[str, ...], int]] = {
    "train": (("train", "sweep"), 1),
    "sweep": (("train", "sweep"), 1),
    "evaluate": (("evaluate", "export"), 2),
    "export": (("evaluate", "export"), 2),
    "real": (("real",), 1),
}
"""Per kind: the kinds that share its limit, and how many of them may run at once (on any face, any process).
One training at a time: two share the CPUs and both take twice as long; a sweep is trainings, so it counts as one. Evaluations and exports also run one
per run folder (a second would write the same export)."""


def check_job_limit(kind: str, run_dir: Path | None, running: Iterable[Any]) -> None:
    """JobLimitError naming the jobs in the way if one more ``kind`` job would break a limit."""
    from roarm_lab.control.jobs import JobLimitError

    kinds, limit = JOB_LIMITS[kind]
    same = [j for j in running if j.kind in kinds]
    if kind in ("evaluate", "export") and run_dir is not None:
        on_run = [j for j in same if j.run_dir and Path(j.run_dir).resolve() == Path(run_dir).resolve()]
        if on_run:
            raise JobLimitError(f"{on_run[-1].kind} job {on_run[-1].id} is already running on this run; wait for it "
                                "(training_status) or stop it", [j.id for j in on_run])
    if len(same) >= limit:
        names = " or ".join(kinds)
        raise JobLimitError(f"{len(same)} {names} job(s) already running ({', '.join(j.id for j in same)}); at most "
                            f"{limit} at a time: wait for one to end or stop it", [j.id for j in same])


# ---------------------------------------------------------------------- overrides from a face
MAX_OVERRIDES = 32
MAX_CHARS = 300
MAX_LIST = 64
MAX_TEXT = 100
TOKEN = re.compile(r"^(env|agent)(\.[A-Za-z_][A-Za-z0-9_]*)+=")
CODE_FIELDS = {"func", "class_type", "class_name", "entry_point"}
PLACE_FIELDS = {"agent.experiment_name", "agent.run_name", "agent.logger", "agent.wandb_project",
                "agent.neptune_project", "agent.resume", "agent.load_run", "agent.load_checkpoint", "agent.device",
                "env.sim.device"}
TERM_GROUPS = ("env.rewards.", "env.events.", "env.terminations.", "env.curriculum.", "env.observations.")
"""A term of these groups may be removed with ``null``."""
PLAIN_TEXT = re.compile(r"^[A-Za-z0-9_ -]{0,%d}$" % MAX_TEXT)
"""A string a face may send: a short name (``adaptive``, ``elu``); no dots, colons, slashes or ``$``."""
_PRIMITIVES = (bool, int, float, str)


def check_override_syntax(overrides: Any, prefixes: tuple[str, ...] = ("env", "agent")) -> list[str]:
    """The overrides as a list of plain ``prefix.a.b=value`` lines a face may send, or OverrideError."""
    if not isinstance(overrides, list) or len(overrides) > MAX_OVERRIDES:
        raise OverrideError(f"overrides must be a list of at most {MAX_OVERRIDES} strings like env.a.b=value")
    for item in overrides:
        if not isinstance(item, str) or len(item) > MAX_CHARS or "\x00" in item or "\n" in item:
            raise OverrideError(f"override {item!r:.60} must be one line of at most {MAX_CHARS} characters")
        if not TOKEN.match(item) or item.split(".", 1)[0] not in prefixes:
            raise OverrideError(f"override {item!r:.60} must look like " + " or ".join(f"{p}.a.b=value" for p in prefixes))
        key = item.split("=", 1)[0]
        named = CODE_FIELDS & set(key.split("."))
        if named:
            raise OverrideError(f"override '{key}' names code ({named.pop()}); it cannot be changed from here: edit "
                                "the task's config in the source instead")
        if key in PLACE_FIELDS:
            raise OverrideError(f"override '{key}' decides where runs are written, logged or computed; the control "
                                "plane sets it")
    return list(overrides)


def face_override_check(key: str, node: Any, name: str, old: Any, new: Any) -> Any:
    """The ``check`` of ``apply_overrides`` for a face: the value, conformed to the field's type, or OverrideError."""
    if new is None:
        if old is None or (key.startswith(TERM_GROUPS) and _is_config(old)) or _allows_none(node, name):
            return None
        raise OverrideError(f"'{key}' cannot be null from here" + ("" if not _is_config(old) else
                            ": only a term of " + ", ".join(g.rstrip(".") for g in TERM_GROUPS) + " can be removed"))
    if old is None:
        return _conform(new, _declared(node, name, key), key)
    if old is dataclasses.MISSING:
        raise OverrideError(f"'{key}' has no default to replace; it cannot be set from here")
    return _conform_like(new, old, key)


def _conform_like(new: Any, old: Any, key: str) -> Any:
    """``new`` shaped like ``old`` (the default it replaces)."""
    if _is_config(old):
        raise OverrideError(f"'{key}' is a configuration object ({type(old).__name__}); set one of its fields "
                            f"({', '.join(f.name for f in dataclasses.fields(old))}), not the whole object")
    if isinstance(old, _PRIMITIVES):
        return _conform(new, type(old), key)
    if isinstance(old, (list, tuple)):
        if not isinstance(new, list) or len(new) > MAX_LIST:
            raise OverrideError(f"'{key}' expects a list of at most {MAX_LIST} values like {list(old)!r}, got {new!r}")
        if not old:
            raise OverrideError(f"'{key}' is an empty list by default: its element type is unknown here")
        items = [_conform_like(v, old[0], f"{key}[{i}]") for i, v in enumerate(new)]
        return tuple(items) if isinstance(old, tuple) else items
    if isinstance(old, dict):
        if not isinstance(new, dict) or not all(isinstance(k, str) for k in new):
            raise OverrideError(f"'{key}' expects a mapping with keys from {sorted(map(str, old))}, got {new!r}")
        unknown = sorted(set(new) - set(old))
        if unknown:
            raise OverrideError(f"'{key}' has no key(s) {unknown}; its keys are {sorted(map(str, old))}")
        return {k: _conform_like(v, old[k], f"{key}.{k}") for k, v in new.items()}
    raise OverrideError(f"'{key}' holds a {type(old).__name__}, which cannot be set from here")


def _conform(new: Any, declared: Any, key: str) -> Any:
    """``new`` as a value of the declared type (bool, int, float, str or a list of one of them)."""
    origin = typing.get_origin(declared)
    if origin in (list, tuple) and len(typing.get_args(declared)) >= 1:
        inner = typing.get_args(declared)[0]
        if not isinstance(new, list) or len(new) > MAX_LIST:
            raise OverrideError(f"'{key}' expects a list of at most {MAX_LIST} values, got {new!r}")
        return [_conform(v, inner, f"{key}[{i}]") for i, v in enumerate(new)]
    if declared is bool:
        if not isinstance(new, bool):
            raise OverrideError(f"'{key}' expects true or false, got {new!r}")
        return new
    if declared is int:
        if isinstance(new, bool) or not isinstance(new, int):
            raise OverrideError(f"'{key}' expects a whole number, got {new!r}")
        return new
    if declared is float:
        if isinstance(new, bool) or not isinstance(new, (int, float)) or not math.isfinite(new):
            raise OverrideError(f"'{key}' expects a finite number, got {new!r}")
        return float(new)
    if declared is str:
        if not isinstance(new, str) or not PLAIN_TEXT.match(new):
            raise OverrideError(f"'{key}' expects a short plain name (letters, digits, '_', '-', at most {MAX_TEXT}), "
                                f"got {new!r}")
        return new
    raise OverrideError(f"'{key}' holds {getattr(declared, '__name__', declared)}, which cannot be set from here: "
                        "a face may set numbers, booleans, short names and lists of them")


def _declared(node: Any, name: str, key: str) -> Any:
    """The declared type of a field whose default is None, without its ``None``; OverrideError if unknowable."""
    hint = _hint(node, name)
    args = [a for a in typing.get_args(hint) if a is not type(None)] if _is_union(hint) else [hint]
    if len(args) != 1 or args[0] is None:
        raise OverrideError(f"'{key}' has no default and no single declared type; it cannot be set from here")
    return args[0]


def _allows_none(node: Any, name: str) -> bool:
    hint = _hint(node, name)
    return _is_union(hint) and type(None) in typing.get_args(hint)


def _hint(node: Any, name: str) -> Any:
    if not dataclasses.is_dataclass(node):
        return None
    try:
        return typing.get_type_hints(type(node)).get(name)
    except Exception:  # an annotation that names something not importable here: treat as unknown
        return None


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _is_config(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def face_task_configs(task: str, overrides: list[str], *, prefixes: tuple[str, ...] = ("env", "agent"),
                      settings: dict[str, Any] | None = None) -> tuple[Any, Any, list[str]]:
    """The task's configs with a face's overrides (and arguments given as ``settings``: key -> value) applied by
    the safe subset, the limits checked on the result; OverrideError / LimitError name the key and the range."""
    from roarm_lab.rl.run_setup import load_task_configs

    check_override_syntax(overrides, prefixes)
    settings = dict(settings or {})
    extra = [f"{k}={v!r}" if not isinstance(v, bool) else f"{k}={str(v).lower()}" for k, v in settings.items()
             if v is not None]
    env_cfg, agent_cfg, applied = load_task_configs(task, list(overrides) + extra, face_override_check)
    check_limits({"env": env_cfg, "agent": agent_cfg})
    return env_cfg, agent_cfg, applied[:len(overrides)]


def check_limits(configs: dict[str, Any]) -> None:
    """LimitError naming the first key of ``OVERRIDE_LIMITS`` whose value in the configs is out of its range."""
    for key, allowed in OVERRIDE_LIMITS.items():
        prefix, *parts = key.split(".")
        node: Any = configs.get(prefix)
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
            if node is None:
                break
        if node is None:
            continue
        for value in (node if isinstance(node, (list, tuple)) else [node]):
            allowed.check(key, value)
