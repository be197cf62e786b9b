"""What a run is made of, for every script: config-file defaults, the runtime, the task configs with overrides and presets, the device.

Nothing here imports the task modules at import time: the runtime (``--runtime``) must be chosen first.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from roarm_lab.rl.overrides import OverrideError, apply_overrides
from roarm_lab.runtime_choice import RUNTIMES, select_runtime


def script_defaults(name: str) -> dict[str, Any]:
    """Defaults from ``configs/<name>.yaml``, which ship inside the package (``roarm_lab.configs``)."""
    text = resources.files("roarm_lab.configs").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return dict(OmegaConf.to_container(OmegaConf.create(text)))


def parse_with_defaults(parser: argparse.ArgumentParser, name: str, argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Parse known flags (defaults from the YAML); the rest must be ``env.*`` / ``agent.*`` overrides."""
    parser.set_defaults(**{k: v for k, v in script_defaults(name).items()})
    args, rest = parser.parse_known_args(argv)
    bad = [r for r in rest if "=" not in r or r.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)} (overrides look like env.a.b=value or agent.c=value)")
    return args, rest


def add_runtime_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", choices=[*RUNTIMES, "auto"],
                        help="embedded (MuJoCo, CPU, the default where it runs) or isaaclab (Isaac Lab 3, Newton)")


def choose_runtime(args: argparse.Namespace) -> str:
    """Select the runtime named on the command line (RuntimeUnavailable says how to install a missing one)."""
    return select_runtime(getattr(args, "runtime", None))


def split_presets(overrides: list[str]) -> tuple[list[str], list[str]]:
    """Isaac Lab's ``presets=a,b`` token (physics backend variants) apart from the ``env.``/``agent.`` overrides."""
    presets: list[str] = []
    rest = []
    for item in overrides:
        if item.startswith("presets="):
            presets += [p for p in item.split("=", 1)[1].split(",") if p]
        else:
            rest.append(item)
    return presets, rest


def load_task_configs(task: str, overrides: list[str], check: Any = None) -> tuple[Any, Any, list[str]]:
    """The task's env and agent configs with the command-line overrides applied and presets resolved.

    ``presets=physx`` picks a variant of every preset config (Isaac Lab's mechanism; the physics backend
    is one); without it each preset takes its ``default``. The embedded runtime has no presets.
    """
    from roarm_lab.isaaclab_api import ISAACLAB
    from roarm_lab.registry import load_cfg_from_registry

    presets, overrides = split_presets(overrides)
    env_cfg = load_cfg_from_registry(task, "env_cfg_entry_point")
    agent_cfg = load_cfg_from_registry(task, "rsl_rl_cfg_entry_point")
    if ISAACLAB:
        from isaaclab_tasks.utils.hydra import collect_presets, resolve_presets

        known = {name for names in collect_presets(env_cfg).values() for name in names}
        unknown = sorted(set(presets) - known)
        if unknown:
            raise OverrideError(f"unknown preset(s) {unknown}; this task has {sorted(known)}")
        env_cfg = resolve_presets(env_cfg, tuple(presets))
    elif presets:
        raise OverrideError(f"presets={','.join(presets)}: presets choose Isaac Lab's physics backends; the embedded "
                            "runtime has one engine (MuJoCo on the CPU). Use --runtime isaaclab")
    applied = apply_overrides({"env": env_cfg, "agent": agent_cfg}, overrides, check)
    return env_cfg, agent_cfg, applied + [f"presets={','.join(presets)}"] * bool(presets)


def set_device(env_cfg: Any, agent_cfg: Any | None, device: str) -> str:
    """Put the simulation and the learner on ``device``. The embedded runtime's state lives on the host."""
    from roarm_lab.isaaclab_api import ISAACLAB

    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise OverrideError(f"--device {device}: no CUDA device is visible to torch here; use --device cpu")
    env_cfg.sim.device = device if ISAACLAB else "cpu"
    if agent_cfg is not None:
        agent_cfg.device = device
    return env_cfg.sim.device


def physics_name(env_cfg: Any) -> str:
    """The physics backend a config runs on, in words (for metrics and run records)."""
    physics = env_cfg.sim.physics
    kind = type(physics).__name__
    solver = getattr(getattr(physics, "solver_cfg", None), "solver_type", None)
    return f"{kind}({solver})" if solver else kind


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
