"""Shared command-line plumbing of the scripts: config-file defaults, task configs, overrides."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from roarm_lab.registry import load_cfg_from_registry
from roarm_lab.rl.overrides import apply_overrides
from roarm_lab.utils.provenance import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "configs"


def script_defaults(name: str) -> dict[str, Any]:
    """Defaults from ``configs/<name>.yaml`` (empty if the file is absent, e.g. in an installed wheel)."""
    path = CONFIG_DIR / f"{name}.yaml"
    return dict(OmegaConf.to_container(OmegaConf.load(path))) if path.is_file() else {}


def parse_with_defaults(parser: argparse.ArgumentParser, name: str, argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Parse known flags (defaults from the YAML); the rest must be ``env.*`` / ``agent.*`` overrides."""
    parser.set_defaults(**{k: v for k, v in script_defaults(name).items()})
    args, rest = parser.parse_known_args(argv)
    bad = [r for r in rest if "=" not in r or r.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)} (overrides look like env.a.b=value or agent.c=value)")
    return args, rest


def load_task_configs(task: str, overrides: list[str]) -> tuple[Any, Any, list[str]]:
    """The task's env and agent configs with the command-line overrides applied."""
    env_cfg = load_cfg_from_registry(task, "env_cfg_entry_point")
    agent_cfg = load_cfg_from_registry(task, "rsl_rl_cfg_entry_point")
    applied = apply_overrides({"env": env_cfg, "agent": agent_cfg}, overrides)
    return env_cfg, agent_cfg, applied


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
