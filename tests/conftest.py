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


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(1)
    yield
