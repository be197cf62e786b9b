"""Shared fixtures: small real environments of the embedded runtime."""

from __future__ import annotations

import pytest
import torch

from roarm_lab.registry import load_cfg_from_registry, make_env

TASK = "RoArm-Reach-v0"


def reach_cfg(num_envs: int = 8, seed: int = 0):
    cfg = load_cfg_from_registry(TASK, "env_cfg_entry_point")
    cfg.scene.num_envs = num_envs
    cfg.seed = seed
    return cfg


@pytest.fixture
def make_reach_env():
    envs = []

    def factory(num_envs: int = 8, seed: int = 0, edit=None):
        cfg = reach_cfg(num_envs, seed)
        if edit is not None:
            edit(cfg)
        env = make_env(TASK, cfg, num_threads=1)
        envs.append(env)
        return env

    yield factory
    for env in envs:
        env.close()


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    """A small untrained policy exported by the project's own exporter (the real format, fast)."""
    from roarm_lab.rl.export import export_policy
    from roarm_lab.rl.runner import RoArmRunner
    from roarm_lab.rl.runner_cfg import to_rsl_rl_dict
    from roarm_lab.rl.vecenv import RslRlVecEnvWrapper

    cfg = load_cfg_from_registry(TASK, "env_cfg_entry_point")
    cfg.scene.num_envs = 4
    env = make_env(TASK, cfg, num_threads=1)
    agent = load_cfg_from_registry(TASK, "rsl_rl_cfg_entry_point")
    agent.actor.hidden_dims = [32, 32]
    runner = RoArmRunner(RslRlVecEnvWrapper(env), to_rsl_rl_dict(agent), log_dir=None, device="cpu",
                         total_iterations=0, show_progress=False)
    out = tmp_path_factory.mktemp("export") / "exported"
    export_policy(runner.alg.get_policy(), env, TASK, out)
    return out


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(1)
    yield
