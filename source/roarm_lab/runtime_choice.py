"""Which runtime a process runs the tasks on: the embedded MuJoCo runtime or Isaac Lab. Chosen once.

``ROARM_RUNTIME`` (``embedded`` | ``isaaclab`` | ``auto``) decides; the scripts set it from ``--runtime``
before any task module is imported. ``auto`` takes the embedded runtime where it can run (MuJoCo 4 with
``mujoco.batch``), else Isaac Lab where it is installed. Asking for a runtime that is not installed is an
error that names the command that sets it up; nothing ever falls back silently.
"""

from __future__ import annotations

import importlib.util
import os
import sys

RUNTIMES = ("embedded", "isaaclab")
ENV_VAR = "ROARM_RUNTIME"
SETUP_ISAACLAB = "scripts/setup_isaaclab.sh"
SETUP_EMBEDDED = 'pip install torch==2.13.0 && pip install -e ".[dev]"'


class RuntimeUnavailable(RuntimeError):
    """The runtime asked for cannot run in this Python environment (the message says how to get it)."""


def embedded_available() -> bool:
    """MuJoCo 4's batched CPU engine is importable (Isaac Lab's venv has MuJoCo 3.12 without it)."""
    try:
        return importlib.util.find_spec("mujoco.batch") is not None
    except (ImportError, ValueError):
        return False


def isaaclab_installed() -> bool:
    return importlib.util.find_spec("isaaclab") is not None


def _check(name: str) -> str:
    if name == "embedded" and not embedded_available():
        raise RuntimeUnavailable("the embedded runtime needs MuJoCo 4 (mujoco.batch), which this Python environment "
                                 f"lacks: use the project's default environment ({SETUP_EMBEDDED}), or "
                                 "--runtime isaaclab here")
    if name == "isaaclab" and not isaaclab_installed():
        raise RuntimeUnavailable(f"Isaac Lab is not installed in this Python environment ({sys.executable}): run "
                                 f"{SETUP_ISAACLAB} and use .venv-isaaclab/bin/python, or --runtime embedded")
    return name


def selected_runtime() -> str:
    """The runtime of this process, from ``ROARM_RUNTIME`` (default ``auto``)."""
    requested = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if requested == "auto":
        if embedded_available():
            return "embedded"
        if isaaclab_installed():
            return "isaaclab"
        raise RuntimeUnavailable(f"no runtime can run here: install the project ({SETUP_EMBEDDED}) for the embedded "
                                 f"runtime, or run {SETUP_ISAACLAB} for Isaac Lab")
    if requested not in RUNTIMES:
        raise RuntimeUnavailable(f"{ENV_VAR}={requested!r} is not a runtime; choose one of {list(RUNTIMES)} or auto")
    return _check(requested)


def select_runtime(name: str | None) -> str:
    """Choose the runtime before the tasks are imported; ``None`` or ``auto`` keeps the automatic choice.

    Choosing another runtime after ``roarm_lab.isaaclab_api`` was imported is refused: the task configs of this
    process are already built from the first runtime's classes.
    """
    if name not in (None, "auto"):
        if name not in RUNTIMES:
            raise RuntimeUnavailable(f"unknown runtime '{name}'; choose one of {list(RUNTIMES)}")
        _check(name)
        loaded = sys.modules.get("roarm_lab.isaaclab_api")
        if loaded is not None and loaded.RUNTIME != name:
            raise RuntimeUnavailable(f"this process already runs the '{loaded.RUNTIME}' runtime; start a new one "
                                     f"for '{name}'")
        os.environ[ENV_VAR] = name
    return selected_runtime()
