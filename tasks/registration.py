"""Register a task folder's ids with gymnasium, as Isaac Lab's tasks do: ``<Id>`` and ``<Id-without-v0>-Play-v0``."""

from __future__ import annotations

import gymnasium as gym

from roarm_lab.isaaclab_api import ENTRY_POINT


def register_task(task_id: str, package: str, env_cfg: str, agent_cfg: str) -> None:
    """``env_cfg``: ``"module:Class"`` inside the task's package (its ``Class_PLAY`` is the play variant);
    ``agent_cfg``: the full ``"module:Class"`` of the agent in ``roarm_lab.agents``."""
    module, name = env_cfg.split(":")
    for suffix, cls in (("", name), ("-Play", f"{name}_PLAY")):
        gym.register(
            id=task_id.replace("-v0", f"{suffix}-v0"),
            entry_point=ENTRY_POINT,
            disable_env_checker=True,
            kwargs={"env_cfg_entry_point": f"{package}.{module}:{cls}",
                    "profile_entry_point": f"{package}.profile:PROFILE",
                    "rsl_rl_cfg_entry_point": agent_cfg},
        )
