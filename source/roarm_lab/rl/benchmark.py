"""Benchmarks: raw MuJoCo stepping vs full environment stepping vs PPO training, per ``num_envs``.

*raw*: the task's model in the same ``mujoco.batch`` threads, ``decimation`` substeps per env-step, the
same kinematics stage, random servo targets written from numpy: the engine's floor. *full*: the whole
``RoArm-Reach-v0`` step (actions, physics, managers, resets, observations) with random actions.
*train*: rsl_rl PPO iterations (collection + update). Each figure is the median over repeats. With
``--runtime isaaclab`` (in the Isaac Lab venv) the full step and training are measured on Isaac Lab 3's Newton
backend; *raw* is the embedded engine's floor and is not measured there.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import statistics
import time

import mujoco
import numpy as np
import torch

from roarm_lab.rl.run_setup import add_runtime_arg, choose_runtime, load_task_configs, physics_name, set_device
from roarm_lab.rl.runner import RoArmRunner
from roarm_lab.rl.runner_cfg import to_rsl_rl_dict
from roarm_lab.rl.vecenv import RslRlVecEnvWrapper

TASK = "RoArm-Reach-v0"


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
    """The whole environment step with random policy actions."""
    env.reset()
    actions = torch.randn(64, env.num_envs, env.action_manager.total_action_dim, device=env.device)
    i = [0]

    def step():
        env.step(actions[i[0] % 64])
        i[0] += 1

    return step


def bench_env(env, seconds: float, repeats: int) -> tuple[float, float, float]:
    """Median raw and full rates, alternating the two so that machine noise hits both alike (raw: embedded only)."""
    raw = raw_stepper(env) if hasattr(env, "sim") and hasattr(env.sim, "batch") else None
    full = full_stepper(env)
    raws, fulls, ratios = [], [], []
    for _ in range(repeats):
        f = _rate(full, env.num_envs, seconds / repeats)
        fulls.append(f)
        if raw is not None:
            r = _rate(raw, env.num_envs, seconds / repeats)
            raws.append(r)
            ratios.append(r / f)
    nan = float("nan")
    return (statistics.median(raws) if raws else nan, statistics.median(fulls),
            statistics.median(ratios) if ratios else nan)


def bench_train(env, agent, iterations: int) -> float:
    with contextlib.redirect_stdout(io.StringIO()):  # rsl_rl prints the networks
        runner = RoArmRunner(RslRlVecEnvWrapper(env), to_rsl_rl_dict(agent), log_dir=None, device=agent.device,
                             total_iterations=iterations, show_progress=False)
    runner.learn(1)
    start = time.perf_counter()
    runner.learn(iterations)
    return iterations * agent.num_steps_per_env * env.num_envs / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num_envs", type=int, nargs="+", default=[512, 2048, 4096])
    p.add_argument("--seconds", type=float, default=10.0, help="measuring time per figure and num_envs")
    p.add_argument("--repeats", type=int, default=5, help="alternating raw/full rounds (medians are printed)")
    p.add_argument("--train_iterations", type=int, default=3, help="PPO iterations timed (0 to skip)")
    p.add_argument("--device", default="cpu", help="simulation and learner device (Isaac Lab: cpu or cuda:0)")
    add_runtime_arg(p)
    args = p.parse_args(argv)
    runtime = choose_runtime(args)
    from roarm_lab.registry import make_env

    print(f"runtime: {runtime}, device: {args.device}")
    print(f"{'num_envs':>8} {'raw env-steps/s':>16} {'full env-steps/s':>17} {'full/raw time':>14} "
          f"{'train env-steps/s':>18} {'max RSS MB':>11}")
    for n in args.num_envs:
        cfg, agent, _ = load_task_configs(TASK, [])
        set_device(cfg, agent, args.device)
        cfg.scene.num_envs = n
        env = make_env(TASK, cfg)
        if n == args.num_envs[0]:
            print(f"physics: {physics_name(cfg)}")
        raw, full, ratio = bench_env(env, args.seconds, args.repeats)
        train = bench_train(env, agent, args.train_iterations) if args.train_iterations else float("nan")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n:>8} {raw:>16,.0f} {full:>17,.0f} {ratio:>14.2f} {train:>18,.0f} {rss:>11,.0f}", flush=True)
        env.close()
    return 0
