"""The exported artifact: ONNX, TorchScript and the training-time policy agree; policy.json describes the env."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from tensordict import TensorDict

from roarm_lab.registry import load_cfg_from_registry
from roarm_lab.policy import SCHEMA_VERSION
from roarm_lab.rl.export import export_policy
from roarm_lab.rl.runner import RoArmRunner
from roarm_lab.rl.runner import to_rsl_rl_dict
from roarm_lab.rl.vecenv import RslRlVecEnvWrapper

TASK = "RoArm-Reach-v0"


@pytest.fixture
def trained_actor(make_reach_env):
    env = make_reach_env(num_envs=16)
    vec = RslRlVecEnvWrapper(env)
    agent = load_cfg_from_registry(TASK, "rsl_rl_cfg_entry_point")
    agent.actor.hidden_dims = [32, 32]
    agent.critic.hidden_dims = [32, 32]
    runner = RoArmRunner(vec, to_rsl_rl_dict(agent), log_dir=None, device="cpu", total_iterations=0, show_progress=False)
    actor = runner.alg.get_policy()
    # give the normalizer and weights non-trivial values so a missing normalizer would show
    for _ in range(5):
        obs, *_ = vec.step(torch.randn(16, 5))
        actor.update_normalization(obs)
    with torch.no_grad():
        for p in actor.mlp.parameters():
            p.add_(0.1 * torch.randn_like(p))
    actor.eval()
    return env, actor, vec


def test_onnx_torchscript_and_training_policy_give_the_same_actions(trained_actor, tmp_path):
    env, actor, vec = trained_actor
    files = export_policy(actor, env, TASK, tmp_path / "exported")
    obs = vec.get_observations()["policy"] * 3.0 + 0.5
    reference = actor(TensorDict({"policy": obs}, batch_size=[obs.shape[0]])).detach()
    jit = torch.jit.load(str(files["torchscript"]))
    torch.testing.assert_close(jit(obs), reference, atol=1e-5, rtol=1e-5)
    session = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    onnx_out = session.run(["actions"], {"obs": obs.numpy()})[0]
    np.testing.assert_allclose(onnx_out, reference.numpy(), atol=1e-5, rtol=1e-5)
    # the normalizer is folded in: the same weights without it give different actions
    raw = actor.mlp(obs).detach()
    assert not torch.allclose(raw, reference, atol=1e-3)
    onnx.checker.check_model(onnx.load(str(files["onnx"])))


def test_policy_json_describes_the_observation_and_action_layout(trained_actor, tmp_path):
    env, actor, vec = trained_actor
    files = export_policy(actor, env, TASK, tmp_path / "exported")
    meta = json.loads(files["metadata"].read_text())
    assert meta["schema_version"] == SCHEMA_VERSION == 2 and meta["task"] == TASK
    assert meta["observation"]["measured_joint_pos_term"] == "joint_pos"  # found from the config's servo term
    terms = meta["observation"]["terms"]
    contract = json.loads((Path(__file__).parent / "data" / "reach_observation_layout.json").read_text())["policy"]
    assert [[t["name"], t["size"]] for t in terms] == contract  # the layout both runtimes are held to
    onnx_input = onnx.load(str(files["onnx"])).graph.input[0].type.tensor_type.shape.dim[1].dim_value
    assert terms[-1]["stop"] == meta["observation"]["size"] == onnx_input  # what the model file itself takes
    assert all(a["stop"] == b["start"] for a, b in zip(terms, terms[1:]))
    assert meta["action"]["names"] == ["base", "shoulder", "elbow", "wrist", "roll"]
    assert meta["action"]["size"] == 5 and len(meta["action"]["lower"]) == 5
    assert meta["action"]["convention"].startswith("relative")
    assert meta["control_period_s"] == pytest.approx(1 / 30)
    assert len(meta["config_hash"]) == 16 and meta["files"]["onnx_input"] == "obs"
    assert not list((tmp_path / "exported").glob("*.tmp"))
