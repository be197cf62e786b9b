"""A sweep's search space: ``configs/sweeps/<task>.yaml``, read as data and checked by the faces' rules.

    target: 0.97                      # the success rate whose first crossing a trial's row reports (samples)
    space:
      agent.algorithm.learning_rate: loguniform(3e-4, 3e-3)
      agent.algorithm.num_mini_batches: choice(2, 4, 8)
      agent.num_steps_per_env: randint(16, 32)       # both ends included
      agent.algorithm.gamma: uniform(0.97, 0.995)

Every key is an override key, and every value a sweep can draw passes the rules a face's override passes
(``control.rules``: a key the task's config declares, no field that names code, the type of the default, the
limits), checked at both ends of each range and for every choice before any trial starts. A distribution is
one of four names with literal numbers (or plain names for ``choice``): nothing in the file is evaluated.
This module imports neither Ray nor torch: the control plane reads spaces too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from roarm_lab.rl.overrides import OverrideError
from roarm_lab.rl.preset_files import KEY, PLAIN, override_value, read_file

DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice")
CALL = re.compile(r"^\s*(" + "|".join(DISTRIBUTIONS) + r")\s*\((.*)\)\s*$")
MAX_KEYS = 16
MAX_CHOICES = 16


@dataclass(frozen=True)
class Dimension:
    """One override key and the distribution its value is drawn from."""

    key: str
    kind: str
    values: tuple[Any, ...]
    """(low, high) for loguniform / uniform / randint (randint includes high), the options for choice."""

    def contains(self, value: Any) -> bool:
        """Whether the space can draw ``value`` (the task's own default, the sweep's first trial)."""
        if self.kind == "choice":
            return value in self.values
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        whole = self.kind != "randint" or isinstance(value, int)
        return number and whole and self.values[0] <= value <= self.values[1]

    def extremes(self) -> tuple[Any, ...]:
        """The values the rules are checked at: both ends of a range, every choice."""
        return self.values

    def text(self) -> str:
        return f"{self.kind}({', '.join(override_value(v, self.key) for v in self.values)})"


@dataclass(frozen=True)
class SweepSpace:
    dimensions: tuple[Dimension, ...]
    target: float
    source: str

    def tokens(self, values: dict[str, Any]) -> list[str]:
        """A trial's values as override tokens, in the space's order (what ``train.py`` is given)."""
        return [f"{d.key}={override_value(values[d.key], d.key)}" for d in self.dimensions]


INTEGER = re.compile(r"^[+-]?\d{1,18}$")
FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _number(text: str, where: str) -> float | int:
    """A literal number: ``3``, ``-0.5``, ``3e-4`` (YAML 1.1 would read ``3e-4`` as a string)."""
    word = text.strip()
    if INTEGER.match(word):
        return int(word)
    value = float(word) if FLOAT.match(word) else math.nan
    if not math.isfinite(value):
        raise OverrideError(f"{where}: {word!r} must be a finite number such as 3, 0.5 or 3e-4")
    return value


def parse_dimension(key: str, spec: Any, where: str) -> Dimension:
    """``loguniform(a, b)`` and the others, from the file's text; OverrideError names the key and the fix."""
    if not isinstance(key, str) or not KEY.match(key):
        raise OverrideError(f"{where}: key {key!r} must be an override key such as agent.algorithm.learning_rate")
    call = CALL.match(spec) if isinstance(spec, str) else None
    if call is None:
        raise OverrideError(f"{where}: {key}: {spec!r} must be one of {', '.join(d + '(...)' for d in DISTRIBUTIONS)}, "
                            "e.g. loguniform(1e-4, 3e-3)")
    kind, inside = call.group(1), [p for p in call.group(2).split(",")]
    at = f"{where}: {key}: {kind}"
    if kind == "choice":
        if not 1 <= len(inside) <= MAX_CHOICES:
            raise OverrideError(f"{at} takes 1 to {MAX_CHOICES} options")
        options = []
        for part in inside:
            word = part.strip()
            options.append(word if PLAIN.match(word) and not _is_number(word) else _number(word, at))
        return Dimension(key, kind, tuple(options))
    if len(inside) != 2:
        raise OverrideError(f"{at} takes two numbers, low and high")
    low, high = (_number(p, at) for p in inside)
    if kind == "randint" and not (isinstance(low, int) and isinstance(high, int)):
        raise OverrideError(f"{at} takes two whole numbers")
    if not low < high:
        raise OverrideError(f"{at}: low {low} must be below high {high}")
    if kind == "loguniform" and low <= 0:
        raise OverrideError(f"{at}: low {low} must be above 0")
    return Dimension(key, kind, (low, high))


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def parse_space(data: Any, source: str) -> SweepSpace:
    if not isinstance(data, dict) or not isinstance(data.get("space"), dict) or not data["space"]:
        raise OverrideError(f"{source} must hold a map 'space:' of override keys to distributions, e.g. "
                            "'agent.algorithm.learning_rate: loguniform(1e-4, 3e-3)'")
    unknown = sorted(set(data) - {"space", "target"})
    if unknown:
        raise OverrideError(f"{source}: unknown entries {unknown}; a sweep file has 'space' and 'target'")
    if len(data["space"]) > MAX_KEYS:
        raise OverrideError(f"{source}: at most {MAX_KEYS} keys in a space")
    target = data.get("target", 0.97)
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1:
        raise OverrideError(f"{source}: target {target!r} must be a success rate in (0, 1]")
    dims = tuple(parse_dimension(k, v, source) for k, v in data["space"].items())
    return SweepSpace(dims, float(target), source)


def read_space(path: str | Path) -> SweepSpace:
    """The file's space, parsed (not yet checked against a task: ``check_space``)."""
    data, _, _ = read_file(path, "sweep space")
    return parse_space(data, f"sweep space {path}")


def value_at(configs: dict[str, Any], key: str) -> Any:
    """The value an override key names in ``{"env": ..., "agent": ...}`` (None where there is none)."""
    prefix, *parts = key.split(".")
    node = configs.get(prefix)
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node


def defaults_in_space(space: SweepSpace, configs: dict[str, Any]) -> dict[str, Any] | None:
    """The configs' current value of every key, if the space can draw them all: the baseline trial."""
    values = {d.key: value_at(configs, d.key) for d in space.dimensions}
    return values if all(d.contains(values[d.key]) for d in space.dimensions) else None


def check_space(task: str, space: SweepSpace, fixed: list[str]) -> None:
    """Every value the space can draw, with the fixed overrides, passes the faces' rules for ``task``."""
    from roarm_lab.control.errors import LimitError
    from roarm_lab.control.rules import face_task_configs

    from roarm_lab.rl.run_setup import load_task_configs

    env_cfg, agent_cfg, _ = load_task_configs(task, list(fixed))
    for dim in space.dimensions:  # a continuous draw for a whole-number setting would fail every trial
        default = value_at({"env": env_cfg, "agent": agent_cfg}, dim.key)
        if dim.kind in ("uniform", "loguniform") and isinstance(default, int) and not isinstance(default, bool):
            raise OverrideError(f"{space.source}: {dim.key} is a whole number ({default}); draw it with "
                                f"randint(lo, hi) or choice(a, b, ...), not {dim.kind}")
    base = [d.values[0] for d in space.dimensions]
    for dim in space.dimensions:
        for value in dim.extremes():
            values = dict(zip([d.key for d in space.dimensions], base)) | {dim.key: value}
            try:
                face_task_configs(task, list(fixed) + space.tokens(values))
            except (OverrideError, LimitError, ValueError) as err:
                raise OverrideError(f"{space.source}: {dim.key}={value!r} is refused: {err}") from None


def default_space_file(task: str) -> Path:
    """``configs/sweeps/<task>.yaml``, which ships inside the package (``roarm_lab.configs``)."""
    from importlib import resources

    return Path(str(resources.files("roarm_lab.configs"))) / "sweeps" / f"{task}.yaml"
