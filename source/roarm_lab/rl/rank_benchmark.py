"""Data-parallel training against one process with the same total environments: the same policy quality?

``python scripts/benchmark_ranks.py --task RoArm-Reach-v0 --ranks 2`` trains the task's default twice, once as one
process with N environments and once under ``torchrun`` as R ranks of N / R environments each (rsl_rl
all-reduces the gradients), then evaluates both final checkpoints with play's held-out episodes. It prints
(and writes as JSON) the wall time, the training throughput and the success rate of each. On a machine with
fewer cores than ranks, the ranks only share cores: the point there is that the two agree, not speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from roarm_lab.utils.io import atomic_write_json
from roarm_lab.utils.provenance import REPO_ROOT

SCRIPTS = REPO_ROOT / "scripts"


def _train(cmd: list[str], log: Path) -> float:
    began = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    if code != 0:
        raise SystemExit(f"training failed ({code}): {' '.join(cmd)}; see {log}")
    return time.monotonic() - began


def _evaluate(task: str, run: Path, episodes: int, randomize: bool) -> dict[str, Any]:
    record = json.loads((run / "run.json").read_text())
    cmd = [sys.executable, str(SCRIPTS / "play.py"), "--task", task, "--checkpoint", str(run / record["final_checkpoint"]),
           "--episodes", str(episodes), "--num_envs", str(min(episodes, 250)), "--no-progress"]
    subprocess.run(cmd + ["--randomize"] * randomize, check=True, capture_output=True, cwd=REPO_ROOT)
    name = "metrics_randomized.json" if randomize else "metrics.json"
    return json.loads((run / "exported" / name).read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="RoArm-Reach-v0")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--num_envs", type=int, help="total environments (default: the task's)")
    p.add_argument("--max_iterations", type=int, help="default: the task's")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "logs" / "rank_benchmark")
    p.add_argument("--json", type=Path, help="write the two rows as JSON")
    args = p.parse_args(argv)
    from roarm_lab.registry import load_cfg_from_registry

    envs = args.num_envs or int(load_cfg_from_registry(args.task, "env_cfg_entry_point").scene.num_envs)
    if envs % args.ranks:
        raise SystemExit(f"--num_envs {envs} does not split into {args.ranks} ranks evenly")
    marker = args.out / ".rank_benchmark"
    if args.out.exists() and not marker.is_file():
        raise SystemExit(f"--out {args.out} exists and is not an earlier rank benchmark's folder: name a new one")
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    marker.write_text("scripts/benchmark_ranks.py empties this folder on its next run\n")
    common = ["--task", args.task, "--log_root", str(args.out), "--no-progress"]
    common += ["--max_iterations", str(args.max_iterations)] * bool(args.max_iterations)
    plans = {
        "1 rank": [sys.executable, str(SCRIPTS / "train.py"), *common, "--num_envs", str(envs), "--run_name", "one"],
        f"{args.ranks} ranks": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                f"--nproc_per_node={args.ranks}", str(SCRIPTS / "train.py"), *common, "--distributed",
                                "--num_envs", str(envs // args.ranks), "--run_name", f"ranks{args.ranks}"],
    }
    rows = []
    for label, cmd in plans.items():
        seconds = _train(cmd, args.out / f"{cmd[-1]}.log")
        run = next(args.out.glob(f"*/*_{cmd[-1]}"))
        record = json.loads((run / "run.json").read_text())
        nominal = _evaluate(args.task, run, args.episodes, False)
        randomized = _evaluate(args.task, run, args.episodes, True)
        samples = record["iterations"] * envs * int(load_cfg_from_registry(args.task, "rsl_rl_cfg_entry_point")
                                                    .num_steps_per_env)
        rows.append({"setup": label, "world_size": record.get("world_size", 1), "envs_per_rank": envs // (
            record.get("world_size") or 1), "wall_time_s": round(seconds, 1), "env_steps_per_s": round(samples / seconds),
            "success_nominal": nominal["success_rate"], "success_randomized": randomized["success_rate"],
            "ranks_in_sync": record.get("ranks_in_sync"), "run": str(run)})
        print(f"{label}: {seconds / 60:.1f} min, success {nominal['success_rate']:.3f} nominal, "
              f"{randomized['success_rate']:.3f} randomized", flush=True)
    print("| setup | envs per rank | wall time | env-steps/s | success (nominal) | success (randomized) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['setup']} | {r['envs_per_rank']} | {r['wall_time_s'] / 60:.1f} min | {r['env_steps_per_s']:,} | "
              f"{r['success_nominal']:.3f} | {r['success_randomized']:.3f} |")
    if args.json:
        atomic_write_json(args.json, rows)
    return 0
