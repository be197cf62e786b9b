"""What this machine can run: Python, torch, MuJoCo, the runtimes, Warp devices, GPUs, the MCP SDK, node.

One row per check (name, status, detail); ``scripts/check_env.py`` prints them as a table and writes them to
``logs/env_diag_<time>.txt``, the MCP tool ``check_environment`` returns them. Nothing here may fail: a check
that raises is reported as a row.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

OK, MISSING, INFO = "ok", "missing", "info"


@dataclass
class Check:
    name: str
    status: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _python() -> Check:
    return Check("python", OK, f"{platform.python_version()} ({sys.executable})")


def _torch() -> Check:
    if importlib.util.find_spec("torch") is None:
        return Check("torch", MISSING, "pip install torch==2.13.0")
    import torch

    cuda = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s)" if torch.cuda.is_available() else "CPU only"
    return Check("torch", OK, f"{torch.__version__}; {cuda}; {torch.get_num_threads()} threads")


def _mujoco() -> Check:
    version = _version("mujoco")
    if version is None:
        return Check("mujoco", MISSING, 'pip install -e ".[dev]" (MuJoCo 4)')
    return Check("mujoco", OK, f"{version}; MUJOCO_GL={os.environ.get('MUJOCO_GL') or '(unset)'}")


def _runtimes() -> list[Check]:
    from roarm_lab.runtime_choice import SETUP_EMBEDDED, SETUP_ISAACLAB, embedded_available, isaaclab_installed

    rows = [Check("runtime: embedded", OK if embedded_available() else MISSING,
                  "MuJoCo 4 mujoco.batch (the default runtime)" if embedded_available() else SETUP_EMBEDDED)]
    if isaaclab_installed():
        rows.append(Check("runtime: Isaac Lab", OK, f"isaaclab {_version('isaaclab') or '?'}"))
    else:
        rows.append(Check("runtime: Isaac Lab", MISSING, f"{SETUP_ISAACLAB} (a separate venv, .venv-isaaclab)"))
    sim = _version("isaacsim")
    rows.append(Check("runtime: Isaac Sim", OK if sim else MISSING,
                      f"isaacsim {sim}" if sim else "not installed (Kit and PhysX; not needed for Newton or embedded)"))
    return rows


def _warp() -> Check:
    if importlib.util.find_spec("warp") is None:
        return Check("warp devices", MISSING, "warp-lang not installed (only Isaac Lab's Newton backend needs it)")
    import warp as wp

    wp.config.quiet = True
    wp.init()
    return Check("warp devices", OK, f"warp {wp.__version__}: {', '.join(str(d) for d in wp.get_devices())}")


def _gpu() -> Check:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Check("gpu", INFO, "no nvidia-smi: no NVIDIA GPU visible (the embedded runtime runs on the CPU)")
    out = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=10)
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return Check("gpu", OK if lines else INFO, "; ".join(lines) or (out.stderr.strip()[:200] or "nvidia-smi: no GPU"))


def _mcp() -> Check:
    version = _version("mcp")
    if version is None:
        return Check("mcp sdk", MISSING, 'pip install -e ".[dev]" (mcp 2.3)')
    return Check("mcp sdk", OK, f"mcp {version}")


def _node() -> Check:
    node, npx = shutil.which("node"), shutil.which("npx")
    if node is None:
        return Check("node (MCP Inspector)", MISSING, "install Node.js 22+ to run the MCP Inspector with npx")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    note = "" if version.lstrip("v").split(".")[0].isdigit() and int(version.lstrip("v").split(".")[0]) >= 22 else \
        " (the Inspector asks for node 22+; 20 works with warnings)"
    return Check("node (MCP Inspector)", OK if npx else MISSING,
                 f"node {version}, npx {'found' if npx else 'missing'}{note}")


def _cpu() -> Check:
    return Check("cpu", INFO, f"{os.cpu_count()} cores, {platform.platform()}")


CHECKS: tuple[Callable[[], Check | list[Check]], ...] = (_python, _cpu, _torch, _mujoco, _runtimes, _warp, _gpu,
                                                         _mcp, _node)


def collect() -> list[Check]:
    rows: list[Check] = []
    for check in CHECKS:
        try:
            result = check()
        except Exception as err:  # a check that breaks is a finding, not a crash
            result = Check(check.__name__.strip("_"), "error", f"{type(err).__name__}: {err}")
        rows.extend(result if isinstance(result, list) else [result])
    return rows


def write_report(rows: list[Check], logs_dir: Path) -> Path:
    """The table in ``<logs>/env_diag_<time>.txt`` (atomically)."""
    from roarm_lab.utils.io import atomic_write_text

    return atomic_write_text(Path(logs_dir) / f"env_diag_{time.strftime('%Y%m%d-%H%M%S')}.txt", table(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``scripts/check_env.py [--logs DIR]``: print the table and write it under the project's logs/."""
    import argparse

    from roarm_lab.control.layout import ProjectPaths

    parser = argparse.ArgumentParser(description="What this machine can run, as a table (also written to a file).")
    parser.add_argument("--logs", type=Path, help="where env_diag_<time>.txt goes (default: the project's logs/)")
    args = parser.parse_args(argv)
    rows = collect()
    print(table(rows))
    print(f"\nwritten to {write_report(rows, args.logs or ProjectPaths.at().logs)}")
    return 0


def table(rows: list[Check]) -> str:
    width = max(len(r.name) for r in rows)
    lines = [f"{'check':<{width}}  {'status':<7}  detail", f"{'-' * width}  {'-' * 7}  {'-' * 40}"]
    lines += [f"{r.name:<{width}}  {r.status:<7}  {r.detail}" for r in rows]
    return "\n".join(lines)
