"""Command-line overrides and task lookup: wrong input names the problem and the choices."""

from __future__ import annotations

import pytest

from roarm_lab.registry import load_cfg_from_registry, make_env, registered_tasks
from roarm_lab.rl.run_setup import load_task_configs
from roarm_lab.rl.overrides import OverrideError

TASK = "RoArm-Reach-v0"


def test_overrides_reach_both_configs_with_hydra_typing():
    env_cfg, agent_cfg, applied = load_task_configs(TASK, [
        "env.rewards.tracking.weight=2.5", "agent.algorithm.learning_rate=3e-4", "env.scene.num_envs=16",
        "agent.actor.hidden_dims=[32,32]", "env.events.reset_robot_joints.params.position_range=[-0.1,0.1]"])
    assert env_cfg.rewards.tracking.weight == 2.5
    assert agent_cfg.algorithm.learning_rate == pytest.approx(3e-4)
    assert env_cfg.scene.num_envs == 16 and agent_cfg.actor.hidden_dims == [32, 32]
    assert env_cfg.events.reset_robot_joints.params["position_range"] == (-0.1, 0.1)
    assert len(applied) == 5


def test_null_removes_a_term_and_the_env_runs_without_it():
    env_cfg, _, _ = load_task_configs(TASK, ["env.rewards.goal=null", "env.scene.num_envs=2"])
    env = make_env(TASK, env_cfg, num_threads=1)
    assert "goal" not in env.reward_manager.active_terms and "tracking" in env.reward_manager.active_terms


@pytest.mark.parametrize("override, fragment", [
    ("env.rewards.trackin.weight=1", "env.rewards.trackin"),
    ("agent.algorithm.lr=1", "agent.algorithm.lr"),
    ("policy.x=1", "must start with one of"),
    ("env.rewards.tracking.weight=abc", "expects a number"),
])
def test_bad_override_names_the_key(override, fragment):
    with pytest.raises(OverrideError, match=fragment.replace(".", r"\.")) as info:
        load_task_configs(TASK, [override])
    if "unknown key" in str(info.value):
        assert "valid choices" in str(info.value)


def test_unknown_task_lists_the_registered_ones():
    with pytest.raises(ValueError) as info:
        load_cfg_from_registry("RoArm-Fly-v0", "env_cfg_entry_point")
    assert "RoArm-Fly-v0" in str(info.value) and "RoArm-Reach-v0" in str(info.value)
    assert "RoArm-Reach-v0" in registered_tasks()


def test_gymnasium_builds_the_task_on_the_selected_runtime_from_its_registration():
    """As Isaac Lab's scripts do: ``gym.make(id, cfg=...)`` with the config the registry names."""
    import gymnasium as gym

    from roarm_lab.isaaclab_api import ENTRY_POINT, ManagerBasedRLEnvCfg, RslRlOnPolicyRunnerCfg

    env_cfg = load_cfg_from_registry(TASK, "env_cfg_entry_point")
    agent_cfg = load_cfg_from_registry(TASK, "rsl_rl_cfg_entry_point")
    assert isinstance(env_cfg, ManagerBasedRLEnvCfg) and isinstance(agent_cfg, RslRlOnPolicyRunnerCfg)
    env_cfg.scene.num_envs = 2
    env = gym.make(TASK, cfg=env_cfg).unwrapped
    module, name = ENTRY_POINT.split(":")
    assert type(env).__module__ == module and type(env).__name__ == name
    assert env.num_envs == 2 and env.observation_manager.group_obs_dim["policy"] == (29,)
