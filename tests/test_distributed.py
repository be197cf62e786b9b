"""Data-parallel training under torchrun, on CPUs here (gloo): rsl_rl's own multi-process path, rank 0 writing
the one run folder, the ranks' weights identical at the end, and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _train(prefix: list[str], log_root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, "scripts/train.py", "--task", "RoArm-Reach-v0", "--num_envs", "16",
                           "--log_root", str(log_root), "--no-progress", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_two_ranks_train_one_run_with_identical_weights_and_resume_it(tmp_path):
    out = _train(TORCHRUN, tmp_path, "--max_iterations", "3", "--distributed")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "16 envs per rank x 2 ranks (gloo)" in out.stdout
    (run,) = (tmp_path / "roarm_reach").iterdir()  # one folder: rank 1 writes nothing
    record = json.loads((run / "run.json").read_text())
    assert (record["world_size"], record["backend"], record["ranks_in_sync"]) == (2, "gloo", True)
    assert len((run / "progress.jsonl").read_text().splitlines()) == 3
    again = _train(TORCHRUN, tmp_path, "--max_iterations", "5", "--distributed", "--resume", str(run))
    assert again.returncode == 0, again.stderr[-2000:]
    assert (run / "model_4.pt").is_file() and json.loads((run / "run.json").read_text())["ranks_in_sync"] is True
    assert [p.name for p in (tmp_path / "roarm_reach").iterdir()] == [run.name]


def test_the_flag_and_the_launcher_must_agree(tmp_path):
    alone = _train([sys.executable], tmp_path, "--max_iterations", "1", "--distributed")
    assert alone.returncode == 2 and "torchrun --standalone --nproc_per_node=N" in alone.stderr
    launched = _train([sys.executable], tmp_path, "--max_iterations", "1", env={"WORLD_SIZE": "2", "RANK": "0"})
    assert launched.returncode == 2 and "add --distributed" in launched.stderr
    assert not (tmp_path / "roarm_reach").exists()
