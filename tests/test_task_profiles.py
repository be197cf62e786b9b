"""Every layer above a task reads the task's profile: a lift policy is evaluated, exported, served and refused by
the real-arm bridge on the lift task's own terms, and the layers the profile replaced name no reach fact."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from roarm_lab.gateway.client import GatewayClient
from roarm_lab.gateway.server import GatewayConfig, GatewayServer
from roarm_lab.policy.loader import LoadedPolicy
from roarm_lab.real.bridge import BridgeError, refuse_unsourced_terms
from roarm_lab.registry import load_cfg_from_registry, make_env, registered_tasks, task_profile
from roarm_lab.rl.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
LIFT = "RoArm-Lift-v0"


def small_env(task: str, num_envs: int, evaluation: bool = True):
    cfg = load_cfg_from_registry(task, "env_cfg_entry_point")
    cfg.scene.num_envs = num_envs
    cfg.seed = 0
    if evaluation:
        cfg.evaluation_mode(randomize=False)
    return make_env(task, cfg)


@pytest.mark.parametrize("task", [t for t in registered_tasks() if "-Play-" not in t])
def test_each_profile_names_its_own_terms_and_thresholds(task):
    profile = task_profile(task)
    cfg = load_cfg_from_registry(task, "env_cfg_entry_point")
    group = getattr(cfg.observations, profile.group)
    command = getattr(cfg.commands, profile.command)
    for measure in profile.measures:
        assert getattr(group, measure.term, None) is not None, f"{task}: {measure.term} not in {profile.group}"
    for bound in profile.success:
        assert isinstance(getattr(command, bound.threshold), float), f"{task}: {bound.threshold}"
        profile.measure(bound.measure)
    assert getattr(cfg.actions, profile.arm_action) is not None
    for term in profile.object_terms:
        assert getattr(cfg.observations.policy, term, None) is not None, f"{task}: {term}"


def test_a_lift_evaluation_reports_the_lift_measures_and_judges_success_by_them():
    env = small_env(LIFT, num_envs=4)
    metrics, traces = evaluate(env, lambda obs: torch.zeros(obs.shape[0], 6), episodes=4, task=LIFT,
                               show_progress=False)
    assert set(metrics["final"]) == {"goal_error_m", "cube_height_m", "hand_to_cube_m"}
    assert metrics["success_rate"] == 0.0  # an arm that holds still lifts nothing
    assert metrics["final"]["cube_height_m"]["max"] < 0.005
    assert metrics["min_lift_m"] == 0.02 and metrics["success_threshold_m"] == 0.025
    assert metrics["error_measure"] == "goal error" and traces.shape == (4, env.max_episode_length)
    # the goal error is the cube's distance to the goal: the arm never touched the cube
    assert 0.03 < metrics["mean_final_error_m"] < 0.3


@pytest.fixture(scope="module")
def lift_export(tmp_path_factory):
    from roarm_lab.rl.export import export_policy
    from roarm_lab.rl.runner import RoArmRunner
    from roarm_lab.rl.runner import to_rsl_rl_dict
    from roarm_lab.rl.vecenv import RslRlVecEnvWrapper

    env = small_env(LIFT, num_envs=2, evaluation=False)
    agent = load_cfg_from_registry(LIFT, "rsl_rl_cfg_entry_point")
    agent.actor.hidden_dims = agent.critic.hidden_dims = [16]
    runner = RoArmRunner(RslRlVecEnvWrapper(env), to_rsl_rl_dict(agent), log_dir=None, device="cpu",
                         total_iterations=0, show_progress=False)
    out = tmp_path_factory.mktemp("lift") / "exported"
    export_policy(runner.alg.get_policy(), env, LIFT, out)
    return out


def test_the_gateway_serves_a_lift_export_whose_spec_names_the_object_terms_and_the_gripper(lift_export):
    policy = LoadedPolicy.load(lift_export)
    assert policy.action_size == 6 and policy.meta["action"]["size"] == 5
    server = GatewayServer(policy, GatewayConfig(bind="tcp://127.0.0.1:0")).start()
    try:
        with GatewayClient(server.endpoint, expected={"task": LIFT, "action_size": 6}) as client:
            spec = client.spec
            terms = [t["name"] for t in spec["observation"]["terms"]]
            assert {"object_position", "object_from_hand", "goal_from_object"} <= set(terms)
            assert [(t["term"], t["size"]) for t in spec["action_terms"]] == [("arm_action", 5), ("gripper_action", 1)]
            gripper = spec["action_terms"][1]
            assert gripper["kind"] == "binary" and gripper["open"] == [1.0] and gripper["close"] == [0.0]
            reply = client.infer(np.zeros(policy.obs_size, np.float32))
            assert len(reply["action"]) == 6 and len(reply["target"]) == 5  # targets: the arm's joints
            np.testing.assert_allclose(reply["action"], policy.infer(np.zeros(policy.obs_size, np.float32)),
                                       atol=1e-6)
    finally:
        server.stop()


def test_the_real_arm_bridge_refuses_a_policy_that_needs_an_object_pose(lift_export, export_dir):
    with pytest.raises(BridgeError, match=r"object_position.*no source"):
        refuse_unsourced_terms(LoadedPolicy.load(lift_export).meta)
    refuse_unsourced_terms(LoadedPolicy.load(export_dir).meta)  # reach's terms all come from the arm


REACH_FACTS = re.compile(r"ee_target|hand error|hand_error|RoArm-Reach-v0|\barm_action\b")
LAYERS = ["source/roarm_lab/rl/evaluate.py", "source/roarm_lab/rl/progress.py", "source/roarm_lab/rl/progress_record.py",
          "source/roarm_lab/rl/curves.py", "mcp_server", "source/roarm_lab/panel", "source/roarm_lab/gateway"]


def test_evaluation_progress_the_faces_and_the_gateway_name_no_reach_fact():
    """The task's names live in its folder and profile; these layers read the profile (the default task is
    ``roarm_lab.DEFAULT_TASK``, stated once)."""
    found = []
    for layer in LAYERS:
        path = ROOT / layer
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.suffix in (".py", ".js", ".html")]
        for file in files:
            for n, line in enumerate(file.read_text().splitlines(), 1):
                if REACH_FACTS.search(line) and "profile" not in line:
                    found.append(f"{file.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
