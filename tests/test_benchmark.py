"""The benchmark's iteration split finds each part in the profile (a part it cannot find would read as 0 s)."""

from __future__ import annotations

from roarm_lab.rl.benchmark import SPLIT_PARTS, split_iteration
from roarm_lab.registry import load_cfg_from_registry

TASK = "RoArm-Reach-v0"


def test_the_iteration_split_finds_every_part_and_counts_none_twice(make_reach_env):
    env = make_reach_env(num_envs=32)
    agent = load_cfg_from_registry(TASK, "rsl_rl_cfg_entry_point")
    agent.num_steps_per_env = 8
    rows = dict(split_iteration(env, agent, 2))
    assert len(rows) == len(SPLIT_PARTS) + 2
    update, stepping, mujoco, act = (rows[label] for label, _, _ in SPLIT_PARTS)
    assert min(update, stepping, mujoco, act) > 0.0  # each was found in the profile
    assert mujoco < stepping  # MuJoCo runs inside the environment step
    total = rows["one iteration"]
    assert update + stepping + act <= total * 1.001  # no part counted twice


def test_the_engine_floor_is_timed_inside_the_full_step(make_reach_env):
    """``engine`` is the time the full step spends in mujoco.batch: a part of the step, so its rate is above the
    full step's, and the batch is the env's own again afterwards."""
    from roarm_lab.rl.benchmark import bench_env

    env = make_reach_env(num_envs=16)
    batch = env.sim.batch
    rates = bench_env(env, seconds=0.4, repeats=2)
    assert env.sim.batch is batch
    assert rates["engine"] > rates["full"] > 0.0 and rates["raw"] > 0.0
    assert rates["ratio_engine"] > 1.0 and rates["ratio"] > 0.0  # both measured (NaN compares false)
