"""The benchmark's iteration split finds each part in the profile (a part it cannot find would read as 0 s)."""

from __future__ import annotations

import torch

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


def test_the_full_step_ends_episodes_at_random_steps_as_training_does(make_reach_env):
    """rsl_rl starts training at random episode lengths, so partial resets run in most steps; the benchmark's
    full step must pay for them too, not reset every environment together once per episode."""
    from roarm_lab.rl.benchmark import full_stepper

    env = make_reach_env(num_envs=256)
    step = full_stepper(env)
    lengths = env.episode_length_buf.clone()
    assert len(torch.unique(lengths)) > 150  # spread over the 360 steps of an episode, not all at 0
    steps_with_resets = 0
    for _ in range(20):
        before = env.episode_length_buf.clone()
        step()
        steps_with_resets += int((env.episode_length_buf < before).any())
    assert steps_with_resets >= 5  # 256 envs over 360 steps: about half the steps reset someone


def test_a_child_s_peak_memory_is_its_own_not_the_parent_it_was_forked_from():
    """``--isolate`` rows read the child's peak resident memory: ``ru_maxrss`` survives ``exec`` on Linux and would
    report the (large) parent's size for every row."""
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    if not Path("/proc/self/status").exists():
        pytest.skip("VmHWM is Linux's")
    ballast = bytearray(300 << 20)  # the parent: 300 MB resident
    ballast[::4096] = b"x" * len(ballast[::4096])
    code = ("import resource; from roarm_lab.rl.benchmark import peak_rss_mb; "
            "print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    own, inherited = map(float, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                               check=True).stdout.split())
    del ballast
    assert inherited - own > 250, (own, inherited)  # the 300 MB ballast is in ru_maxrss only


def test_the_report_page_says_which_targets_were_met_and_draws_the_latency(tmp_path):
    import numpy as np

    from roarm_lab.benchmark_report import TARGETS, plot_latency, write_page

    rng = np.random.default_rng(0)
    samples = [{"phase": phase, "round_trip_us": f"{v:.1f}"} for phase, scale in
               (("gateway_1khz", 380.0), ("router_echo_1khz", 210.0), ("req_rep_echo_1khz", 220.0))
               for v in rng.lognormal(np.log(scale), 0.2, 200)]
    png = plot_latency(samples, tmp_path / "latency.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = {"full_engine_512": 1.2, "full_engine_2048": 1.38, "p50_over_router": 1.79,
               "four_clients_per_s": TARGETS["four_clients_per_s"] + 1}
    write_page(tmp_path / "benchmarks.md", {"split": "SPLIT", "scaling": "SCALING", "gateway": "GATEWAY",
                                            "phases": "PHASES"}, figures,
               "python scripts/benchmark_report.py")
    page = (tmp_path / "benchmarks.md").read_text()
    verdicts = {line.split("|")[1].strip(): line.split("|")[4].strip() for line in page.splitlines()
                if line.startswith("| full / engine") or line.startswith("| gateway")}
    assert verdicts == {"full / engine at 512 envs": "met", "full / engine at 2048 envs": "missed",
                        "gateway p50 / ROUTER echo p50": "missed", "gateway, 4 clients, requests/s": "met"}
    assert all(part in page for part in ("SPLIT", "SCALING", "GATEWAY", "PHASES", "benchmarks_history.md"))


def test_the_step_phases_add_up_to_the_step_and_leave_the_env_as_it_was(make_reach_env):
    from roarm_lab.rl.benchmark import STEP_PHASES, step_phases

    env = make_reach_env(num_envs=16)
    rows = dict(step_phases(env, 40))
    assert len(rows) == len(STEP_PHASES) + 2
    assert rows["the rest of the step"] >= 0  # no phase is counted inside another
    assert rows["engine (mujoco.batch, all substeps)"] > 0 and rows["partial resets (events, managers' resets)"] > 0
    assert "_reset_idx" not in vars(env) and "step" not in vars(env.sim)  # the timers are gone


def test_the_managers_comparison_measures_both_paths_in_one_process():
    from roarm_lab.rl.benchmark import compare_managers

    result = compare_managers(16, seconds=0.6, rounds=1)
    assert set(result) == {"readable", "fused"}
    for path in result.values():
        assert path["ratio_engine"] > 1.0 and path["full"] > 0  # the managers cost something on top of the engine
        labels = [label for label, _ in path["phases"]]
        assert labels[0].startswith("engine") and labels[-1] == "one step"
    assert [label for label, _ in result["readable"]["phases"]] == [label for label, _ in result["fused"]["phases"]]
