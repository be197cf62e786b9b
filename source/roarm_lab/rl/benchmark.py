"""Benchmarks: raw MuJoCo stepping vs full environment stepping vs PPO training, per ``num_envs``.

*raw*: the task's model in the same ``mujoco.batch`` threads, ``decimation`` substeps per env-step, the
same kinematics stage, random servo targets written from numpy. *full*: the whole ``RoArm-Reach-v0`` step
(actions, physics, managers, resets, observations) with random actions, its episodes ending at random steps
as training's do (a few partial resets in most steps). *engine*: the time the full step
spends inside ``mujoco.batch``'s step, as a rate: the engine's floor in the task's own states. The two floors
differ: random targets swing the arms through free space, while the task's arms touch the table and the base
(contacts, constraint rows), which costs the engine more per step; ``full/engine`` is the manager overhead alone.
*train*: rsl_rl PPO iterations (collection + update). Each figure is the median over repeats. With
``--runtime isaaclab`` (in the Isaac Lab venv) the full step and training are measured on Isaac Lab 3's Newton
backend; *raw* is the embedded engine's floor and is not measured there.

``--isolate`` measures each ``num_envs`` in a fresh process (its resident memory is then its own, not the
largest so far) and ``--plot PNG`` draws env-steps/s and resident memory against ``num_envs``:

    python scripts/benchmark.py --num_envs 64 128 256 512 1024 2048 4096 8192 --isolate --plot docs/scaling_envs.png

``--split N`` profiles N training iterations of the default task and prints where an iteration goes:

    python scripts/benchmark.py --split 15

``--managers readable`` measures the readable term functions instead of the fused managers (the default, see
``embedded/managers/fused.py``); ``--compare-managers`` measures both in one process, round by round, with the
phases of a step on each path:

    python scripts/benchmark.py --num_envs 512 2048 --compare-managers
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
import resource
import statistics
import time
from typing import Any

import mujoco
import numpy as np
import torch

from roarm_lab.utils.figures import save_png
from roarm_lab import DEFAULT_TASK
from roarm_lab.rl.run_setup import add_runtime_arg, choose_runtime, load_task_configs, physics_name, set_device
from roarm_lab.rl.runner import RoArmRunner
from roarm_lab.rl.runner import to_rsl_rl_dict
from roarm_lab.rl.vecenv import RslRlVecEnvWrapper

TASK = DEFAULT_TASK


def _rate(fn, steps_per_call: int, seconds: float) -> float:
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls * steps_per_call / (time.perf_counter() - start)


def raw_stepper(env):
    """The engine alone: same batch, threads, substeps and kinematics stage; targets written from numpy."""
    sim, n, dec = env.sim, env.num_envs, env.cfg.decimation
    lo, hi = sim.model.actuator_ctrlrange[:, 0], sim.model.actuator_ctrlrange[:, 1]
    targets = np.random.default_rng(0).uniform(lo, hi, size=(64, n, len(lo)))
    i = [0]

    def step():
        sim.ctrl[:] = targets[i[0] % 64]
        sim.batch.step(nstep=dec, stage=mujoco.mjtStage.mjSTAGE_POS.value)
        i[0] += 1

    return step


def full_stepper(env):
    """The whole environment step with random policy actions, episodes ending as they do in training.

    rsl_rl starts a run with random episode lengths (``init_at_random_ep_len``), so in training a few
    environments reset in almost every step; after a plain ``reset()`` they would all end together, once per
    episode, and the per-step cost of partial resets would not be measured.
    """
    env.reset()
    env.episode_length_buf = torch.randint_like(env.episode_length_buf, high=int(env.max_episode_length))
    actions = torch.randn(64, env.num_envs, env.action_manager.total_action_dim, device=env.device)
    i = [0]

    def step():
        env.step(actions[i[0] % 64])
        i[0] += 1

    return step


class _TimedBatch:
    """``mujoco.batch.Batch`` with its ``step`` timed: what the full step spends in the engine."""

    def __init__(self, batch):
        self._batch = batch
        self.seconds = 0.0

    def step(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._batch.step(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name):
        return getattr(self._batch, name)


def bench_env(env, seconds: float, repeats: int) -> dict[str, float]:
    """Median raw, full and engine rates and the ratios full/raw and full/engine, alternating raw and full rounds
    so that machine noise hits both alike (raw and engine: embedded runtime only)."""
    embedded = hasattr(env, "sim") and hasattr(env.sim, "batch")
    raw = raw_stepper(env) if embedded else None
    full = full_stepper(env)
    rows: dict[str, list[float]] = {"raw": [], "full": [], "engine": [], "ratio": [], "ratio_engine": []}
    for _ in range(repeats):
        timed = _TimedBatch(env.sim.batch) if embedded else None
        if timed is not None:
            env.sim.batch = timed
        calls = [0]

        def counted():
            full()
            calls[0] += 1

        try:
            f = _rate(counted, env.num_envs, seconds / repeats)
        finally:
            if timed is not None:
                env.sim.batch = timed._batch
        rows["full"].append(f)
        if raw is not None:
            r = _rate(raw, env.num_envs, seconds / repeats)
            engine = calls[0] * env.num_envs / timed.seconds  # warm-up call included in both
            rows["raw"].append(r)
            rows["engine"].append(engine)
            rows["ratio"].append(r / f)
            rows["ratio_engine"].append(engine / f)
    nan = float("nan")
    return {k: statistics.median(v) if v else nan for k, v in rows.items()}


STEP_PHASES = (  # (label, object path from the env, method): the parts of an environment step, timed in place
    ("engine (mujoco.batch, all substeps)", "sim", "step"),
    ("partial resets (events, managers' resets)", "", "_reset_idx"),
    ("observations", "observation_manager", "compute"),
    ("rewards", "reward_manager", "compute"),
    ("commands (metrics, resampling)", "command_manager", "compute"),
    ("terminations", "termination_manager", "compute"),
    ("action term: process", "action_manager", "process_action"),
    ("action term: apply (servo model)", "action_manager", "apply_action"),
    ("scene update (state copies)", "scene", "update"),
)


def step_phases(env, steps: int) -> list[tuple[str, float]]:
    """Milliseconds per environment step spent in each phase of the full step (random actions, episodes ending
    as in training), and the rest; each phase's method is wrapped with a timer for the measurement only."""
    step = full_stepper(env)
    for _ in range(20):
        step()
    spent = {label: 0.0 for label, _, _ in STEP_PHASES}
    saved = []
    for label, where, name in STEP_PHASES:
        owner = env if not where else getattr(env, where)
        original = getattr(owner, name)

        def timed(*args, _original=original, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] += time.perf_counter() - start

        setattr(owner, name, timed)
        saved.append((owner, name))
    try:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        total = time.perf_counter() - start
    finally:
        for owner, name in saved:
            delattr(owner, name)  # the instance attribute goes; the class's method shows through again
    rows = [(label, spent[label] / steps * 1e3) for label, _, _ in STEP_PHASES]
    rows.append(("the rest of the step", (total - sum(spent.values())) / steps * 1e3))
    rows.append(("one step", total / steps * 1e3))
    return rows


def _quiet_runner(env, agent, iterations: int) -> RoArmRunner:
    """A runner without logs or progress bar, one iteration already run (warm-up)."""
    with contextlib.redirect_stdout(io.StringIO()):  # rsl_rl prints the networks
        runner = RoArmRunner(RslRlVecEnvWrapper(env), to_rsl_rl_dict(agent), log_dir=None, device=agent.device,
                             total_iterations=iterations, show_progress=False)
    runner.learn(1)
    return runner


def bench_train(env, agent, iterations: int) -> float:
    runner = _quiet_runner(env, agent, iterations)
    start = time.perf_counter()
    runner.learn(iterations)
    return iterations * agent.num_steps_per_env * env.num_envs / (time.perf_counter() - start)


SPLIT_PARTS = (  # (label, how to find its cumulative time in the profile: file suffix, function name)
    ("PPO update (epochs x mini-batches: forward, backward, Adam)", "rsl_rl/algorithms/ppo.py", "update"),
    ("environment steps", "roarm_lab/embedded/env.py", "step"),
    ("  of which MuJoCo (mujoco.batch step)", "~", "mujoco._batch.step"),
    ("policy inference during collection (PPO.act)", "rsl_rl/algorithms/ppo.py", "act"),
)


def split_iteration(env, agent, iterations: int) -> list[tuple[str, float]]:
    """Where a training iteration goes: cProfile over ``iterations`` rsl_rl iterations, the cumulative time of
    the update, the environment steps (and MuJoCo within them) and inference, per iteration; the rest is
    rollout storage, returns and logging. The profiler adds a few per cent to the small calls."""
    import cProfile
    import pstats

    runner = _quiet_runner(env, agent, iterations)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.runcall(runner.learn, iterations)
    total = (time.perf_counter() - start) / iterations
    stats = pstats.Stats(profile).stats
    rows = []
    for label, where, name in SPLIT_PARTS:
        found = [v[3] for (path, _, func), v in stats.items()
                 if (name in func if where == "~" else path.endswith(where) and func == name)]
        rows.append((label, sum(found) / iterations))
    top_level = sum(t for label, t in rows if not label.startswith(" "))
    rows.append(("rollout storage, returns, logging, the rest", max(total - top_level, 0.0)))
    rows.append(("one iteration", total))
    return rows


READABLE = ["env.sim.physics.fused_managers=false"]
"""The override that runs the managers' readable term functions instead of their fused forms."""


def compare_managers(n: int, seconds: float, rounds: int = 3) -> dict[str, dict[str, Any]]:
    """Full / engine of the fused and the readable managers at ``num_envs`` ``n``, in one process, alternating
    rounds so that machine noise hits both alike; with each path's step phases (ms)."""
    from roarm_lab.registry import make_env

    envs = {}
    for label, overrides in (("readable", READABLE), ("fused", [])):
        cfg, _, _ = load_task_configs(TASK, overrides)
        cfg.scene.num_envs = n
        envs[label] = make_env(TASK, cfg)
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in envs}
    for _ in range(rounds):
        for label, env in envs.items():
            runs[label].append(bench_env(env, seconds / rounds, 3))
    result = {}
    for label, env in envs.items():
        result[label] = {key: statistics.median(r[key] for r in runs[label]) for key in ("full", "engine",
                                                                                         "ratio_engine")}
        result[label]["phases"] = step_phases(env, 300)
        env.close()
    return result


def measure(n: int, args: argparse.Namespace) -> dict[str, float]:
    """One ``num_envs``: raw, full and training rates and this process's peak resident memory."""
    from roarm_lab.registry import make_env

    cfg, agent, _ = load_task_configs(TASK, READABLE if args.managers == "readable" else [])
    set_device(cfg, agent, args.device)
    cfg.scene.num_envs = n
    env = make_env(TASK, cfg)
    rates = bench_env(env, args.seconds, args.repeats)
    train = bench_train(env, agent, args.train_iterations) if args.train_iterations else float("nan")
    rss = peak_rss_mb()
    row = {"num_envs": n, **rates, "train": train, "rss_mb": rss, "physics": physics_name(cfg)}
    env.close()
    return row


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's ``VmHWM`` belongs to the running image; ``ru_maxrss`` survives
    ``exec`` and so counts the parent a child was forked from (a large parent made every ``--isolate`` row its size)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _isolated(n: int, argv: list[str]) -> dict[str, float]:
    """``measure`` in a fresh interpreter: the row is the child's last stdout line (JSON)."""
    cmd = [sys.executable, "-m", "roarm_lab.rl.benchmark", *argv, "--num_envs", str(n), "--row"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"num_envs {n} failed (exit {done.returncode}): {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot_scaling(rows: list[dict[str, float]], png: Path) -> Path:
    """Env-steps/s (raw, full, training) and resident memory against num_envs, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    n = [r["num_envs"] for r in rows]
    fig, (rate, ratio, mem) = plt.subplots(1, 3, figsize=(15, 4))
    for key, label in (("raw", "raw MuJoCo, random targets (mujoco.batch)"),
                       ("engine", "MuJoCo inside the task's step"), ("full", "full environment step"),
                       ("train", "PPO training (collect + update)")):
        values = [r.get(key, float("nan")) for r in rows]
        if any(v == v for v in values):  # not all NaN
            rate.plot(n, values, "o-", label=label)
    rate.set_xscale("log", base=2)
    rate.set_yscale("log")
    rate.set_xlabel("num_envs")
    rate.set_ylabel("env-steps per second")
    rate.legend(loc="lower right", fontsize=8)
    rate.grid(True, which="both", alpha=0.3)
    ratio.plot(n, [r.get("ratio_engine", float("nan")) for r in rows], "o-", color="C2",
               label="full / engine (the managers' overhead)")
    ratio.plot(n, [r.get("ratio", float("nan")) for r in rows], "s--", color="0.5", label="full / raw")
    ratio.plot([512, 2048], [1.25, 1.10], "rv", markersize=9, label="issue 30's targets (full / engine)")
    ratio.axhline(1.0, color="k", linewidth=0.6)
    ratio.set_xscale("log", base=2)
    ratio.set_xlabel("num_envs")
    ratio.set_ylabel("time per env-step, relative to the engine")
    ratio.legend(fontsize=8)
    ratio.grid(True, which="both", alpha=0.3)
    mem.plot(n, [r["rss_mb"] for r in rows], "o-", color="C3")
    mem.set_xscale("log", base=2)
    mem.set_xlabel("num_envs")
    mem.set_ylabel("peak resident memory (MB)")
    mem.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{TASK} on the embedded runtime, 2 CPU cores")
    fig.tight_layout()
    return save_png(fig, png)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num_envs", type=int, nargs="+", default=[512, 2048, 4096])
    p.add_argument("--seconds", type=float, default=10.0, help="measuring time per figure and num_envs")
    p.add_argument("--repeats", type=int, default=5, help="alternating raw/full rounds (medians are printed)")
    p.add_argument("--train_iterations", type=int, default=3, help="PPO iterations timed (0 to skip)")
    p.add_argument("--device", default="cpu", help="simulation and learner device (Isaac Lab: cpu or cuda:0)")
    add_runtime_arg(p)
    p.add_argument("--isolate", action="store_true", help="each num_envs in a fresh process (its own peak memory)")
    p.add_argument("--plot", type=Path, help="write a PNG of env-steps/s and memory against num_envs")
    p.add_argument("--json", type=Path, help="write the rows as JSON")
    p.add_argument("--split", type=int, metavar="N", help="instead: profile N training iterations at the task's "
                   "default num_envs and print where an iteration goes")
    p.add_argument("--managers", choices=["fused", "readable"], default="fused",
                   help="the embedded runtime's managers: fused forms (default) or the readable term functions")
    p.add_argument("--compare-managers", action="store_true", help="instead: full / engine of both managers at "
                   "each num_envs, in one process, with each path's step phases")
    p.add_argument("--row", action="store_true", help=argparse.SUPPRESS)  # --isolate's child: one JSON row
    args = p.parse_args(argv)
    runtime = choose_runtime(args)
    if args.split:
        return _print_split(args)
    if args.compare_managers:
        return _print_comparison(args)
    if args.row:
        print(json.dumps(measure(args.num_envs[0], args)))
        return 0
    child_argv = ["--seconds", str(args.seconds), "--repeats", str(args.repeats), "--train_iterations",
                  str(args.train_iterations), "--device", args.device, "--runtime", runtime, "--managers",
                  args.managers]
    print(f"runtime: {runtime}, device: {args.device}")
    print(f"{'num_envs':>8} {'raw env-steps/s':>16} {'engine env-steps/s':>19} {'full env-steps/s':>17} "
          f"{'full/raw time':>14} {'full/engine time':>17} {'train env-steps/s':>18} {'max RSS MB':>11}")
    rows = []
    for n in args.num_envs:
        row = _isolated(n, child_argv) if args.isolate else measure(n, args)
        if not rows:
            print(f"physics: {row['physics']}")
        rows.append(row)
        print(f"{n:>8} {row['raw']:>16,.0f} {row['engine']:>19,.0f} {row['full']:>17,.0f} {row['ratio']:>14.2f} "
              f"{row['ratio_engine']:>17.2f} {row['train']:>18,.0f} {row['rss_mb']:>11,.0f}", flush=True)
    if args.json:
        from roarm_lab.utils.io import atomic_write_json

        atomic_write_json(args.json, rows)
    if args.plot:
        print(f"wrote {plot_scaling(rows, args.plot)}")
    return 0


def task_split(iterations: int, overrides: list[str] = (), device: str = "cpu") -> tuple[list[tuple[str, float]], Any]:
    """``split_iteration`` of the default task with ``overrides`` (the agent's batch shape decides the split)."""
    from roarm_lab.registry import make_env

    cfg, agent, _ = load_task_configs(TASK, list(overrides))
    set_device(cfg, agent, device)
    env = make_env(TASK, cfg)
    try:
        return split_iteration(env, agent, iterations), agent
    finally:
        env.close()


def _print_comparison(args: argparse.Namespace) -> int:
    for n in args.num_envs:
        result = compare_managers(n, args.seconds)
        print(f"num_envs {n}: full / engine, readable {result['readable']['ratio_engine']:.3f}, "
              f"fused {result['fused']['ratio_engine']:.3f}")
        print(f"  {'phase (ms per step)':<46} {'readable':>9} {'fused':>9}")
        for (label, ms_r), (_, ms_f) in zip(result["readable"]["phases"], result["fused"]["phases"]):
            print(f"  {label:<46} {ms_r:>9.3f} {ms_f:>9.3f}")
    return 0


def _print_split(args: argparse.Namespace) -> int:
    rows, agent = task_split(args.split, READABLE if args.managers == "readable" else [], device=args.device)
    total = rows[-1][1]
    print(f"{TASK}: {agent.num_steps_per_env} steps per env, {args.split} iterations profiled, {args.managers} "
          "managers")
    print(f"{'part':<62} {'s / iteration':>13} {'share':>6}")
    for label, seconds in rows:
        print(f"{label:<62} {seconds:>13.3f} {100 * seconds / total:>5.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
