"""The README and the docs as a newcomer meets them: the Quick start run from a copy of the repository, every
script flag a doc shows accepted by that script, the Python snippets executed, the arm's facts and the
environment variables documented inside the repository; and the newcomer-facing behaviours of training
(quiet output, presets, optional loggers)."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```(\w+)\n(.*?)```", re.S)
SCRIPT = re.compile(r"(?:^|\s)(?:\S*(?:python|torchrun)\S*\s+(?:-\S+\s+)*)(scripts/\w+\.py)((?:\s+(?!#)\S+)*)")


def blocks(lang: str) -> list[tuple[Path, str]]:
    return [(doc, m.group(2)) for doc in DOCS for m in FENCE.finditer(doc.read_text()) if m.group(1) == lang]


def commands() -> list[tuple[Path, str]]:
    """Every shell line of the docs, continuation lines joined, comments dropped."""
    out = []
    for doc, text in blocks("bash"):
        for line in text.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].split("  #")[0].strip()
            if line and not line.startswith("#"):
                out.append((doc, line))
    return out


@lru_cache(maxsize=None)
def help_text(script: str) -> str:
    out = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{script} --help failed: {out.stderr[-500:]}"
    return out.stdout


def test_every_script_flag_the_docs_show_is_one_the_script_accepts():
    checked = 0
    for doc, line in commands():
        for part in re.split(r"&&|\|", line):
            found = SCRIPT.search(part)
            if not found:
                continue
            script = found.group(1)
            assert (ROOT / script).is_file(), f"{doc.name}: {script} does not exist ({part.strip()})"
            if script in ("scripts/sim_service.py",) or "analyze" in part:
                continue
            text = help_text(script)
            for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", found.group(2)):
                assert flag in text, f"{doc.name}: `{part.strip()}` uses {flag}, which {script} does not accept"
            checked += 1
    assert checked >= 15  # the docs show this many script commands (a parser that finds none would pass)


def test_no_doc_points_outside_the_repository():
    for doc in DOCS:
        text = doc.read_text()
        assert "shared/robot" not in text and "../shared" not in text, f"{doc.name} points outside the repository"


def test_the_arm_s_facts_page_agrees_with_the_joint_table():
    from roarm_lab.assets.joint_table import JOINTS

    text = (ROOT / "docs" / "robot.md").read_text()
    rows = {cells[0].strip(): cells for cells in (r.split("|")[1:-1] for r in text.splitlines())
            if len(cells) == 7 and "_to_" in cells[0]}

    def number(word: str) -> float:
        word = word.strip()
        sign = -1.0 if word.startswith("-") else 1.0
        return sign * (math.pi if word.lstrip("-") == "pi" else float(word.lstrip("-")))

    assert len(rows) == len(JOINTS)
    for j in JOINTS:
        cells = rows[j.name]
        assert cells[1].strip() == j.short, j.name
        lo, hi = (number(v) for v in cells[6].split(" to "))
        assert (lo, hi) == pytest.approx((j.lower, j.upper), abs=5e-4), j.name


def test_env_example_documents_every_variable_the_code_reads():
    names = set()
    reads = re.compile(r"(?:environ(?:\.get)?\(|environ\[|getenv\(|setdefault\()\s*[\"']([A-Z][A-Z0-9_]+)[\"']")
    for folder in ("source", "real", "mcp_server", "scripts", "exts", "tests", ".ci"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".sh", "") and "__pycache__" not in path.parts \
                    and "venv" not in str(path):
                text = path.read_text(errors="ignore")
                names |= set(re.findall(r"\bROARM_[A-Z0-9_]+\b", text)) | set(reads.findall(text))
    names = {n for n in names if not n.startswith("ROARM_M3")} - {"PATH", "HOME"}  # the robot's names; the OS's own
    documented = (ROOT / ".env.example").read_text()
    missing = sorted(n for n in names if not re.search(rf"\b{n}=", documented))
    assert not missing, f".env.example does not document {missing}"


# ---------------------------------------------------------------------------- the newcomer's first hour
@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory) -> Path:
    """The repository's tracked files, as a clone has them (no logs, no venvs)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    dest = tmp_path_factory.mktemp("clone")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    return dest


def _quick_start_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start"):readme.index("## What is in the box")]
    return [line for doc, line in commands() if doc.name == "README.md" and line in quick]


@pytest.mark.long
def test_the_quick_start_trains_evaluates_and_stays_quiet_in_a_fresh_copy(clean_copy):
    lines = _quick_start_lines()
    install = next(line for line in lines if "pip install" in line)
    assert "-m venv .venv" in install and "--index-url https://download.pytorch.org/whl/cpu" in install
    assert '-e ".[dev]"' in install  # the venv VS Code's tasks and MCP server use, CPU torch, then the project
    first_look = next(line for line in lines if "--max_iterations" in line and "train.py" in line)
    play = next(line for line in lines if "play.py" in line)
    train = subprocess.run([sys.executable, *shlex.split(first_look)[1:], "--no-progress"], cwd=clean_copy,
                           capture_output=True, text=True, timeout=900)
    assert train.returncode == 0, train.stderr[-2000:]
    for noise in ("Actor", "Critic", "Sequential", "Storing git diff"):
        assert noise not in train.stdout, f"train.py printed rsl_rl's {noise!r} to the console"
    run = Path(re.search(r"-> (\S+)", train.stdout).group(1))
    run = run if run.is_absolute() else clean_copy / run
    console = (run / "train_console.log").read_text()
    assert "Actor" in console and "Storing git diff" in console  # kept in the run's log instead
    evaluate = play.replace("<run>", run.name)
    played = subprocess.run([sys.executable, *shlex.split(evaluate)[1:], "--no-progress"], cwd=clean_copy,
                            capture_output=True, text=True, timeout=900)
    assert played.returncode == 0, played.stderr[-2000:]
    metrics = json.loads((run / "exported" / "metrics.json").read_text())
    assert metrics["episodes"] == int(re.search(r"--episodes (\d+)", play).group(1))


def test_the_readme_gateway_snippet_runs_against_a_real_gateway(export_dir):
    import socket

    (code,) = [text for doc, text in blocks("python") if doc.name == "README.md" and "GatewayClient" in text]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = subprocess.Popen([sys.executable, "scripts/gateway.py", "--policy", str(export_dir), "--bind",
                                f"tcp://127.0.0.1:{port}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        gateway.stdout.readline()  # its ready line
        out = subprocess.run([sys.executable, "-c", code.replace("tcp://127.0.0.1:5555", f"tcp://127.0.0.1:{port}")],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-1500:]
        assert len(re.findall(r"-?\d+\.\d+(?:e-?\d+)?", out.stdout)) == 5, out.stdout  # five joint targets
    finally:
        gateway.terminate()
        gateway.wait(20)


# ---------------------------------------------------------------------------- presets and loggers
def _train(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/train.py", "--task", "RoArm-Reach-v0", "--num_envs", "16",
                           "--max_iterations", "2", "--log_root", str(tmp_path / "runs"), "--no-progress", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_presets_and_reward_files_apply_as_overrides_and_the_run_keeps_them(tmp_path):
    smooth = ROOT / "configs" / "presets" / "reach_smooth.yaml"
    out = _train(tmp_path, "--preset", "configs/presets/reach_no_randomization.yaml", "--reward-config", str(smooth),
                 "env.rewards.joint_vel.weight=-0.003")
    assert out.returncode == 0, out.stderr[-1500:]
    (run,) = (tmp_path / "runs" / "roarm_reach").iterdir()
    env = yaml.safe_load((run / "env.yaml").read_text())
    assert env["rewards"]["action_rate"]["weight"] == -0.02  # from the reward file
    assert env["rewards"]["joint_vel"]["weight"] == -0.003  # the command line wins
    assert env["events"].get("action_latency") is None  # from the preset
    record = json.loads((run / "run.json").read_text())
    assert [p["flag"] for p in record["presets"]] == ["--preset", "--reward-config"]
    assert (run / "presets" / "1_reach_smooth.yaml").read_text() == smooth.read_text()


@pytest.mark.parametrize("content,says", [
    ("env.observations.policy.joint_pos.func: 'os:system'\n", "names code"),
    ("trackng: -1\n", "env.rewards.trackng"),
    ("- a list\n", "must be a map"),
    ("agent.max_iterations: 1000000000\n", "agent.max_iterations"),
])
def test_a_bad_preset_is_one_line_and_starts_nothing(tmp_path, content, says):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    out = _train(tmp_path, "--reward-config" if "trackng" in content else "--preset", str(bad))
    assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr, out.stderr[-800:]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("model_*.pt"))


def test_a_logger_whose_package_is_missing_is_one_line_naming_the_install(tmp_path):
    out = _train(tmp_path, "agent.logger=neptune")
    assert out.returncode == 2 and "pip install neptune" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_weights_and_biases_logs_a_run_offline_into_the_run_folder(tmp_path):
    pytest.importorskip("wandb", reason='the wandb extra is not installed: pip install -e ".[wandb]"')
    import os

    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("WANDB_DIR", None)
    out = _train(tmp_path, "agent.logger=wandb", env=env)
    assert out.returncode == 0, out.stderr[-1500:]
    (run,) = (tmp_path / "runs" / "roarm_reach").iterdir()
    assert list(run.glob("wandb/offline-run-*")), "no offline wandb run in the run folder"
    assert not (ROOT / "wandb").exists()


def test_rollouts_recorded_during_training_have_a_physics_report_and_leave_training_unchanged(tmp_path):
    import numpy as np
    import torch

    recorded = _train(tmp_path / "a", "--max_iterations", "4", "--record-rollouts-every", "2")
    plain = _train(tmp_path / "b", "--max_iterations", "4")
    assert recorded.returncode == 0 and plain.returncode == 0, recorded.stderr[-1500:] + plain.stderr[-500:]
    (run,) = (tmp_path / "a" / "runs" / "roarm_reach").iterdir()
    folders = sorted((run / "rollouts").iterdir())
    assert [f.name for f in folders] == ["iteration_00001", "iteration_00003"]
    meta = json.loads((folders[0] / "meta.json").read_text())
    assert meta["episodes"] == 4 and len(meta["physics"]) == 4
    assert all(p["kinetic_energy_j_max"] > 0 and "contacts_mean" in p for p in meta["physics"])
    with np.load(folders[0] / "episode_00000.npz", allow_pickle=False) as episode:
        assert "link_masses_kg" in json.loads(str(episode["randomization"]))
    (other,) = (tmp_path / "b" / "runs" / "roarm_reach").iterdir()
    weights = [torch.load(r / "model_3.pt", weights_only=True)["actor_state_dict"] for r in (run, other)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # recording drew no training randomness
