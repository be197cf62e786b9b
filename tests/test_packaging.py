"""The project as a wheel, outside the checkout: every package and data file ships, every console script runs.

The wheel is built from this tree, installed (without its dependencies) into a fresh venv in a temporary folder
that borrows the dependencies of the test venv, and driven from that folder: no file of the checkout can be
found from there, so anything that only worked because the checkout was the working directory fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["roarm-train", "roarm-play", "roarm-benchmark", "roarm-step-response", "roarm-plot-training",
           "roarm-gateway", "roarm-benchmark-gateway", "roarm-run-real", "roarm-calibrate", "roarm-emulator",
           "roarm-export-mjcf", "roarm-export-mcap", "roarm-usd", "roarm-mcp", "roarm-sim", "roarm-check-env",
           "roarm-sweep", "roarm-benchmark-ranks"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, wheel path, a working folder outside the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    # build from a copy of the files git knows (tracked, or new and not ignored): what a clean clone holds
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    source = base / "source"
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                          "-q", "-w", str(base / "dist")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = (base / "dist").glob("roarm_lab-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python*/site-packages"))
    # the dependencies come from the test venv (a path line in a .pth file: its own .pth files, the editable
    # finder of the checkout among them, are not processed)
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                          "--no-deps", str(wheel)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    work = base / "work"
    work.mkdir()
    return venv / "bin", wheel, work


def run(bin_dir: Path, args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_the_wheel_holds_every_package_and_data_file(installed):
    _, wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    mapped = {"source/roarm_lab": "roarm_lab", "tasks": "roarm_lab/tasks", "agents": "roarm_lab/agents",
              "real": "roarm_lab/real", "mcp_server": "roarm_lab/mcp_server", "configs": "roarm_lab/configs"}
    for folder, package in mapped.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            inside = init.relative_to(ROOT / folder).as_posix()
            assert f"{package}/{inside}" in names, f"{folder}/{inside} is not in the wheel"
    for data in ("roarm_lab/assets/data/roarm_m3.urdf", "roarm_lab/assets/data/roarm_m3.usda",
                 "roarm_lab/configs/train.yaml", "roarm_lab/configs/gateway.yaml", "roarm_lab/configs/real.yaml"):
        assert data in names, data


def test_the_installed_package_is_the_wheels_not_the_checkouts(installed):
    bin_dir, _, work = installed
    out = run(bin_dir, [str(bin_dir / "python"), "-c", "import roarm_lab; print(roarm_lab.__file__)"], work)
    assert out.returncode == 0, out.stderr
    assert str(ROOT) not in out.stdout and "site-packages" in out.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_console_script_starts_outside_the_checkout(installed, script):
    bin_dir, _, work = installed
    out = run(bin_dir, [str(bin_dir / script), "--help"], work, timeout=120)
    assert out.returncode == 0, f"{script}: {out.stderr[-2000:]}"
    assert "usage" in out.stdout.lower() and "Traceback" not in out.stderr


@pytest.mark.long
def test_train_play_and_serve_a_policy_from_the_installed_wheel(installed):
    bin_dir, _, work = installed
    out = run(bin_dir, ["roarm-train", "--task", "RoArm-Reach-v0", "--num_envs", "16", "--max_iterations", "2",
                        "--no-progress", "agent.num_steps_per_env=8", "agent.actor.hidden_dims=[16,16]",
                        "agent.critic.hidden_dims=[16,16]"], work)
    assert out.returncode == 0, out.stderr[-3000:]
    (checkpoint,) = (work / "logs" / "rsl_rl" / "roarm_reach").glob("*/model_1.pt")
    out = run(bin_dir, ["roarm-play", "--task", "RoArm-Reach-v0", "--checkpoint", str(checkpoint), "--episodes", "4",
                        "--num_envs", "4", "--no-progress"], work)
    assert out.returncode == 0, out.stderr[-3000:]
    export = checkpoint.parent / "exported"
    assert json.loads((export / "metrics.json").read_text())["episodes"] == 4
    port = 29000 + os.getpid() % 1000
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    gateway = subprocess.Popen([str(bin_dir / "roarm-gateway"), "--policy", str(export), "--bind",
                                f"tcp://127.0.0.1:{port}"], cwd=work, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        client = ("import json, numpy as np\n"
                  "from roarm_lab.gateway.client import GatewayClient\n"
                  f"meta = json.load(open({str(export / 'policy.json')!r}))\n"
                  f"with GatewayClient('tcp://127.0.0.1:{port}', timeout_ms=20000) as c:\n"
                  "    reply = c.infer(np.zeros(meta['observation']['size'], np.float32), deadline_ms=5000)\n"
                  "    print(len(reply['target']))\n")
        deadline = time.monotonic() + 60
        while True:
            out = run(bin_dir, [str(bin_dir / "python"), "-c", client], work, timeout=90)
            if out.returncode == 0 or time.monotonic() > deadline or gateway.poll() is not None:
                break
            time.sleep(1)
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.strip() == "5"
    finally:
        gateway.send_signal(signal.SIGINT)
        try:
            gateway.wait(timeout=30)
        except subprocess.TimeoutExpired:
            gateway.kill()
