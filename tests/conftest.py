"""Shared fixtures: small real environments of the task on the runtime this Python environment selects.

In the project's default venv that is the embedded MuJoCo runtime; in the Isaac Lab venv (``.ci/run`` runs
``tests/test_task_on_runtimes.py`` there too) it is Isaac Lab 3 on Newton, on the CPU.
"""

from __future__ import annotations

import pytest
import torch

from roarm_lab.isaaclab_api import RUNTIME
from roarm_lab.registry import load_cfg_from_registry, make_env
from roarm_lab.rl.run_setup import load_task_configs, set_device

TASK = "RoArm-Reach-v0"

SLOW_MODULES = {
    "test_mcp", "test_mcp_real_arm", "test_control_faces", "test_panel", "test_panel_browser", "test_kit_extension",
    "test_train_play_cli", "test_hostile_train", "test_hostile_real", "test_benchmark", "test_packaging",
    "test_sim_service", "test_isaaclab", "test_isaaclab_parity", "test_task_on_runtimes", "test_export",
    "test_docs", "test_ros2_mcap", "test_usd_inspect", "test_gateway_extras", "test_distributed",
}
"""Modules that train, start servers, browsers or Kit, or build wheels: marked ``slow``. ``pytest -m "not slow"``
is the quick subset (about 2 minutes on 2 cores); plain ``pytest`` runs everything (what CI runs)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def reach_cfg(num_envs: int = 8, seed: int = 0, task: str = TASK):
    """A task's config as the scripts build it (presets resolved on Isaac Lab), small, on the CPU."""
    cfg, _, _ = load_task_configs(task, [])
    set_device(cfg, None, "cpu")
    cfg.scene.num_envs = num_envs
    cfg.seed = seed
    if RUNTIME == "embedded":
        cfg.sim.physics.nthread = 1
    return cfg


@pytest.fixture
def make_task_env():
    """``make_task_env(num_envs, seed, edit, task)``: a new env of a task (reach by default); the test's previous
    ones are closed first (Isaac Lab allows one simulation at a time), the rest after the test."""
    envs = []

    def factory(num_envs: int = 8, seed: int = 0, edit=None, task: str = TASK):
        while envs:
            envs.pop().close()
        cfg = reach_cfg(num_envs, seed, task)
        if edit is not None:
            edit(cfg)
        env = make_env(task, cfg)
        envs.append(env)
        return env

    yield factory
    for env in envs:
        env.close()


@pytest.fixture
def make_reach_env(make_task_env):
    return make_task_env


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    """A small untrained policy exported by the project's own exporter (the real format, fast)."""
    from roarm_lab.rl.export import export_policy
    from roarm_lab.rl.runner import RoArmRunner
    from roarm_lab.rl.runner import to_rsl_rl_dict
    from roarm_lab.rl.vecenv import RslRlVecEnvWrapper

    env = make_env(TASK, reach_cfg(4))
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
