"""Find tasks and their configurations by id, as Isaac Lab's ``parse_env_cfg`` / ``load_cfg_from_registry``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import gymnasium as gym

import roarm_lab.tasks  # noqa: F401  (registers the task ids)

if TYPE_CHECKING:
    from roarm_lab.task_profile import TaskProfile

TASK_PREFIX = "RoArm-"


def registered_tasks() -> list[str]:
    return sorted(k for k in gym.registry if k.startswith(TASK_PREFIX))


def task_spec(task: str) -> gym.envs.registration.EnvSpec:
    """The gymnasium spec of a task; an unknown id lists the registered ones."""
    if task not in gym.registry or not task.startswith(TASK_PREFIX):
        raise ValueError(f"unknown task '{task}'; registered tasks: {', '.join(registered_tasks())}")
    return gym.spec(task)


def load_cfg_from_registry(task: str, entry_point_key: str, instantiate: bool = True) -> Any:
    """Instantiate the config class a task names under ``entry_point_key`` (or return the object it names)."""
    spec = task_spec(task)
    entry = spec.kwargs.get(entry_point_key)
    if entry is None:
        raise ValueError(f"task '{task}' has no '{entry_point_key}'; it has {sorted(spec.kwargs)}")
    module, name = entry.split(":")
    target = getattr(importlib.import_module(module), name)
    return target() if instantiate else target


def task_profile(task: str) -> "TaskProfile":
    """What a task reports (``tasks/<name>/profile.py``): the layers above the task read this, never its names."""
    return load_cfg_from_registry(task, "profile_entry_point", instantiate=False)


def make_env(task: str, env_cfg: Any, **kwargs: Any) -> Any:
    """Build the task's environment from an (overridden) config on the runtime the registry names."""
    spec = task_spec(task)
    module, name = spec.entry_point.split(":")
    return getattr(importlib.import_module(module), name)(cfg=env_cfg, **kwargs)
