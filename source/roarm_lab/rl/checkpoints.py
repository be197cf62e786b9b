"""Finding and checking checkpoints: the newest run, the newest model in it, and whether it fits a task."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

_MODEL = re.compile(r"model_(\d+)\.pt$")


class CheckpointError(ValueError):
    pass


def latest_run_dir(experiment_dir: Path) -> Path:
    runs = sorted(p for p in experiment_dir.glob("*") if p.is_dir() and any(p.glob("model_*.pt")))
    if not runs:
        raise CheckpointError(f"no run with a checkpoint under {experiment_dir}; train first or pass a path")
    return runs[-1]


def latest_checkpoint(run_dir: Path) -> Path:
    models = [(int(m.group(1)), p) for p in run_dir.glob("model_*.pt") if (m := _MODEL.search(p.name))]
    if not models:
        raise CheckpointError(f"no model_*.pt in {run_dir}")
    return max(models)[1]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file; a missing or unreadable file is an error that names it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a corrupt file
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict) or "actor_state_dict" not in data:
        raise CheckpointError(f"{path} is not an rsl_rl checkpoint (no 'actor_state_dict')")
    return data


def check_compatible(checkpoint: dict[str, Any], path: str | Path, task: str, obs_dim: int, action_dim: int) -> None:
    """Refuse a checkpoint trained for another task or with other observation/action sizes, saying which."""
    infos = checkpoint.get("infos") or {}
    if infos.get("task") and infos["task"] != task:
        raise CheckpointError(f"checkpoint {path} was trained on '{infos['task']}', not '{task}'")
    weights = [v for k, v in checkpoint["actor_state_dict"].items() if k.startswith("mlp.") and k.endswith("weight")]
    if weights:
        if weights[0].shape[1] != obs_dim:
            raise CheckpointError(f"checkpoint {path} expects {weights[0].shape[1]} observations, task '{task}' "
                                  f"gives {obs_dim}")
        if weights[-1].shape[0] != action_dim:
            raise CheckpointError(f"checkpoint {path} outputs {weights[-1].shape[0]} actions, task '{task}' "
                                  f"takes {action_dim}")
