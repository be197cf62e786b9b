"""Checks of a run's settings before anything is built or written: one line that names the value and the fix.

The configs come from code, the YAML defaults and the command line (``--num_envs``, ``env.*``/``agent.*``
overrides); a zero, a negative or a NaN there would otherwise surface as a traceback deep in the simulator
or the optimizer, or be silently replaced by a default.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterator

from roarm_lab.rl.overrides import OverrideError
from roarm_lab.rl.schedules import entropy_hold, entropy_schedule

_Rule = tuple[str, Callable[[Any], bool], str]


def _int_at_least(n: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= n


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _unit(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1


RULES: tuple[_Rule, ...] = (
    ("env.scene.num_envs", _int_at_least(1), "an integer of at least 1"),
    ("env.sim.dt", _positive, "a positive number of seconds (the physics step)"),
    ("env.decimation", _int_at_least(1), "an integer of at least 1"),
    ("env.episode_length_s", _positive, "a positive number of seconds"),
    ("agent.max_iterations", _int_at_least(1), "an integer of at least 1"),
    ("agent.num_steps_per_env", _int_at_least(1), "an integer of at least 1"),
    ("agent.save_interval", _int_at_least(1), "an integer of at least 1"),
    ("agent.algorithm.learning_rate", _positive, "a positive number"),
    ("agent.algorithm.num_learning_epochs", _int_at_least(1), "an integer of at least 1"),
    ("agent.algorithm.num_mini_batches", _int_at_least(1), "an integer of at least 1"),
    ("agent.algorithm.clip_param", _positive, "a positive number"),
    ("agent.algorithm.max_grad_norm", _positive, "a positive number"),
    ("agent.algorithm.gamma", _unit, "a number in [0, 1]"),
    ("agent.algorithm.lam", _unit, "a number in [0, 1]"),
)


def check_flag(flag: str, value: int | None, at_least: int = 1) -> None:
    """A count given on the command line (``--num_envs``, ``--max_iterations``): None is "not given", 0 is not."""
    if value is not None and value < at_least:
        raise OverrideError(f"{flag} {value}: must be at least {at_least} (leave it out for the task's default)")


def _leaves(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            yield from _leaves(getattr(node, f.name), f"{path}.{f.name}")
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _leaves(value, f"{path}[{i}]")
    else:
        yield path, node


def _get(configs: dict[str, Any], path: str) -> Any:
    prefix, *parts = path.split(".")
    node = configs[prefix]
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
    return node


def check_run_configs(env_cfg: Any, agent_cfg: Any) -> None:
    """Refuse settings no run can use: a NaN anywhere, and the ranges in ``RULES``; OverrideError names the first.

    Inf is left to the rules: some of Isaac Lab's physics settings are infinite by default.
    """
    configs = {"env": env_cfg, "agent": agent_cfg}
    for prefix, cfg in configs.items():
        for path, value in _leaves(cfg, prefix):
            if isinstance(value, float) and math.isnan(value):
                raise OverrideError(f"{path}=nan: must be a number; set it with {path}=<number>")
    for path, ok, what in RULES:
        value = _get(configs, path)
        if value is not None and not ok(value):
            raise OverrideError(f"{path}={value!r}: must be {what}; set it with {path}=<value>")
    schedule = getattr(agent_cfg, "entropy_schedule", None)
    if schedule is not None:
        try:
            entropy_schedule(schedule)
        except ValueError as err:
            raise OverrideError(f"{err}; for example agent.entropy_schedule=[[0,0.006],[500,0.006],[900,0.0]]") from None
    hold = getattr(agent_cfg, "entropy_hold", None)
    try:
        entropy_hold(hold)
    except ValueError as err:
        raise OverrideError(f"{err}; for example agent.entropy_hold=[150,0.05]") from None
    if hold is not None and schedule is None:
        raise OverrideError("agent.entropy_hold holds the entropy schedule, and this agent has none; set one too, "
                            "e.g. agent.entropy_schedule=[[0,0.006],[150,0.006],[400,0.001]]")
    check_logger_installed(getattr(agent_cfg, "logger", None))


LOGGER_PACKAGES = {"wandb": ("wandb", "wandb"), "neptune": ("neptune", None)}
"""rsl_rl's optional loggers: the package each imports, and this project's extra that installs it."""


def check_logger_installed(logger: str | None) -> None:
    """A logger whose package is missing is one line naming the install command, before anything is built (rsl_rl
    would raise deep inside the runner, after the environment)."""
    import importlib.util

    if logger not in LOGGER_PACKAGES:
        return
    package, extra = LOGGER_PACKAGES[logger]
    if importlib.util.find_spec(package) is None:
        how = f'pip install -e ".[{extra}]"' if extra else f"pip install {package}"
        raise OverrideError(f"agent.logger={logger} needs the {package} package, which is not installed: {how} "
                            "(or use agent.logger=tensorboard, the default)")
