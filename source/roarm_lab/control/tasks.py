"""The tasks the lab can train, as the faces list them: read from each task's profile and configs."""

from __future__ import annotations

from typing import Any


def task_catalogue() -> list[dict[str, Any]]:
    """Every registered task (not its play variant): what it is, how success is judged, what it reports, its
    defaults, and whether the real arm can run its policies (it cannot observe an object's pose yet)."""
    from roarm_lab.registry import load_cfg_from_registry, registered_tasks, task_profile

    out = []
    for task in registered_tasks():
        if "-Play-" in task:
            continue
        profile = task_profile(task)
        env = load_cfg_from_registry(task, "env_cfg_entry_point")
        agent = load_cfg_from_registry(task, "rsl_rl_cfg_entry_point")
        out.append({"task": task, "title": profile.title, "success": profile.success_text,
                    "measures": [{"name": m.name, "label": m.label, "unit": m.unit} for m in profile.measures],
                    "gripper": profile.gripper_action is not None, "num_envs": int(env.scene.num_envs),
                    "max_iterations": int(agent.max_iterations), "episode_s": float(env.episode_length_s),
                    "real_arm": not profile.object_terms})
    return out


def error_label(task: str | None) -> str:
    """What a task's position error is called (hand error, goal error): the label faces put on the figure."""
    if not task:
        return "error"
    from roarm_lab.registry import task_profile

    try:
        return task_profile(task).primary.label
    except ValueError:
        return "error"
