"""The real-arm side: firmware protocol, the task's observation on feedback, driver and bridge against the
firmware emulator (real bytes through a real pseudo-terminal, a real HTTP server)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

from roarm_lab.assets.joint_table import JOINTS, NAMED_POSES
from roarm_lab.real.observation import ArmObservation
from roarm_lab.real.protocol import FrameError, encode, feedback_message, joints_command, parse_feedback

TASK = "RoArm-Reach-v0"


# ---------------------------------------------------------------------------- protocol
def test_t102_maps_the_gripper_and_fits_the_firmware_line_limit():
    line = encode(joints_command([0.1, -0.2, 1.5, 0.3, -0.4, 1.0]))
    cmd = json.loads(line)
    assert line.endswith(b"\n") and len(line) < 256
    assert cmd["T"] == 102 and cmd["base"] == 0.1 and cmd["wrist"] == 0.3
    assert cmd["hand"] == pytest.approx(math.pi - 1.0, abs=1e-4)  # hand = pi - q
    with pytest.raises(ValueError, match="6 joint values"):
        joints_command([0.0] * 5)


@pytest.mark.parametrize("line,kind", [
    (b"\x00\xffgarbage", "garbage"),
    (b'{"T":1051,"x":1.0,"y":2', "torn"),
    (b'{"T":1051,"x":1,"y":2,"z":3,"b":0,"s":0,"e":1.5,"t":0,"r":0}', "torn"),  # no g
    (b'{"T":1051,"x":1,"y":2,"z":3,"b":3.1416,"s":0,"e":1.5,"t":0,"r":3.1416,"g":3.14}', "unpowered"),
    (b'{"T":102,"base":0}', "other"),
])
def test_bad_frames_are_refused_with_their_kind(line, kind):
    with pytest.raises(FrameError) as err:
        parse_feedback(line, 0.0)
    assert err.value.kind == kind


def test_feedback_round_trip_maps_the_gripper_back():
    q = np.array([0.3, -0.2, 1.2, 0.4, 0.1, 0.9])
    fb = parse_feedback(encode(feedback_message(q, [300.0, 10.0, 150.0])), 5.0)
    np.testing.assert_allclose(fb.q, q, atol=1e-4)
    assert fb.raw["g"] == pytest.approx(math.pi - 0.9, abs=1e-4) and fb.received == 5.0


# ---------------------------------------------------------------------------- observation
def test_arm_observation_is_the_task_observation(make_reach_env, export_dir):
    """The bridge's observation equals the simulator's noiseless policy observation for the same state."""
    def noiseless(cfg):
        cfg.observations.policy.enable_corruption = False

    env = make_reach_env(num_envs=1, edit=noiseless)
    meta = json.loads((export_dir / "policy.json").read_text())
    arm = ArmObservation(meta)  # built after the env: resolving its terms must not disturb the simulator's
    robot, command = env.scene["robot"], env.command_manager.get_term("ee_pose")

    def arm_obs() -> np.ndarray:
        hand = (robot.data.body_pos_w[0, command.body_idx] - robot.data.root_pos_w[0]).numpy()
        return arm(robot.data.joint_pos[0].numpy(), hand, env.command_manager.get_command("ee_pose")[0].numpy(),
                   env.action_manager.action[0].numpy())

    env.reset()
    arm.reset()
    arm_obs()
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        obs, *_ = env.step(torch.rand(1, 5, generator=gen) * 2 - 1)
        expected = obs["policy"][0].numpy()
        assert np.abs(expected[5:10]).max() > 1e-3  # the arm moves: the velocity term is exercised
        np.testing.assert_allclose(arm_obs(), expected, atol=1e-5)
