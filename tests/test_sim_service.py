"""The simulator service as users run it: its own process, a real ZeroMQ socket, the task's real environment,
MuJoCo's offscreen renderer, the project's exporter and rollout format."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from roarm_lab.utils.services import ServiceProcess
from roarm_lab.sim_service.client import SimClient, SimError

TASK = "RoArm-Reach-v0"


def _service(tmp: Path, policy_root: Path, *extra: str) -> tuple[ServiceProcess, SimClient]:
    proc = ServiceProcess([sys.executable, "-m", "roarm_lab.sim_service", "--bind", "tcp://127.0.0.1:*", "--task", TASK,
                           "--policy-root", str(policy_root), "--data-dir", str(tmp), *extra],
                          r"endpoint=(\S+)", tmp / "service.log").start()
    return proc, SimClient(proc.match.group(1), timeout_ms=60000)


@pytest.fixture(scope="module")
def sim(tmp_path_factory, export_dir):
    proc, client = _service(tmp_path_factory.mktemp("sim"), export_dir.parent)
    yield client
    try:
        client.call("shutdown", timeout_ms=5000)
    finally:
        client.close()
        assert proc.stop() == 0  # it exited by itself, cleanly


def test_joint_targets_move_the_joints_and_out_of_box_values_are_clamped_and_named(sim):
    sim.call("reset")
    start = np.array(sim.call("joint_state")["state"]["arm"]["measured"])
    goal = start + np.array([0.4, -0.2, 0.3, 0.2, 0.0])
    state = sim.call("set_joint_targets", targets=goal.tolist())["state"]
    assert state["clamped"] == [False] * 5 and np.allclose(state["arm"]["goal"], goal)
    after = np.array(sim.call("step", steps=45)["state"]["arm"]["measured"])
    assert np.all(np.abs(after - goal) < 0.5 * np.abs(start - goal) + 0.02)  # every joint went most of the way
    wild = sim.call("set_joint_targets", targets=[9.0, 0.0, 1.5, -5.0, 0.0])["state"]
    assert wild["clamped"] == [True, False, False, True, False]
    assert wild["arm"]["goal"][0] == pytest.approx(wild["arm"]["upper"][0])
    assert wild["arm"]["goal"][3] == pytest.approx(wild["arm"]["lower"][3])


@pytest.mark.parametrize("targets,code", [([0.0, float("nan"), 0.0, 0.0, 0.0], "not_finite"),
                                          ([0.0, 0.0, float("inf"), 0.0, 0.0], "not_finite"),
                                          ([0.0, 0.0], "wrong_size"), (["a", 0, 0, 0, 0], "bad_array")])
def test_bad_joint_targets_are_refused_with_their_code_and_nothing_changes(sim, targets, code):
    before = sim.call("joint_state")["state"]["arm"]["goal"]
    with pytest.raises(SimError) as err:
        sim.call("set_joint_targets", targets=targets)
    assert err.value.code == code
    assert sim.call("joint_state")["state"]["arm"]["goal"] == before


def test_observation_terms_follow_the_exported_layout(sim, export_dir):
    meta = json.loads((export_dir / "policy.json").read_text())
    obs = sim.call("observation")["observation"]["policy"]
    assert obs["layout"] == meta["observation"]["terms"]
    flat = np.concatenate([obs["terms"][t["name"]] for t in obs["layout"]])
    assert np.allclose(flat, obs["vector"]) and len(flat) == meta["observation"]["size"]
    state = sim.call("joint_state")["state"]
    assert np.allclose(obs["terms"]["ee_target"], state["target_b"], atol=1e-6)
    assert np.allclose(obs["terms"]["ee_position"], state["hand_b"], atol=1e-6)  # noise is off in this config


def test_a_target_can_be_set_and_an_unreachable_one_is_refused_with_the_nearest_point(sim):
    state = sim.call("set_target", target=[0.25, -0.05, 0.15])["state"]
    assert np.allclose(state["target_b"], [0.25, -0.05, 0.15], atol=1e-6)
    with pytest.raises(SimError) as err:
        sim.call("set_target", target=[1.5, 0.0, 0.2])
    assert err.value.code == "unreachable" and "nearest reachable point" in err.value.message
    assert np.allclose(sim.call("joint_state")["state"]["target_b"], [0.25, -0.05, 0.15], atol=1e-6)


def test_render_gives_a_png_of_the_scene_that_changes_with_the_camera(sim):
    from PIL import Image

    images = {}
    for camera in ("iso", "top"):
        reply = sim.call("render", camera=camera, width=320, height=240)
        png = reply["png"]
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        images[camera] = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
        assert images[camera].shape == (240, 320, 3)
        assert images[camera].std() > 10  # not a blank frame
    green = (images["iso"][..., 1] > 150) & (images["iso"][..., 0] < 100) & (images["iso"][..., 2] < 100)
    assert green.sum() > 5  # the target marker is drawn
    assert np.abs(images["iso"] - images["top"]).mean() > 5
    with pytest.raises(SimError, match="cameras"):
        sim.call("render", camera="nope")


def test_a_raw_action_goes_through_the_tasks_action_term(sim):
    spec = sim.hello()["spec"]["action"]
    state = sim.call("reset", target=[0.25, 0.05, 0.15])["state"]
    assert np.allclose(state["target_b"], [0.25, 0.05, 0.15], atol=1e-6)
    before = np.array(state["arm"]["commanded"])
    after = np.array(sim.call("act", action=[1.0, 0.0, 0.0, -1.0, 0.0], steps=3)["state"]["arm"]["commanded"])
    # relative joint targets: three steps of scale * action (0.05 rad each, under the 0.1 rad step limit)
    expected = before + 3 * np.array(spec["scale"]) * np.array([1.0, 0.0, 0.0, -1.0, 0.0])
    assert spec["mode"] == "relative" and np.allclose(after, expected, atol=1e-5)


def test_a_policy_runs_closed_loop_for_its_steps(sim, export_dir):
    sim.call("reset")
    reply = sim.call("run_policy", policy={"export": str(export_dir)}, target=[0.25, 0.05, 0.15], max_steps=40,
                     until_reached=False)
    run = reply["policy"]
    assert run["done"] and run["stopped"] == "max_steps" and run["steps"] == 40
    assert run["source"].startswith("local ONNX") and run["initial_error_m"] > 0
    assert reply["state"]["step"] >= 40 and reply["state"]["controller"] is None
    # the policy's actions went through the task's action term: the commanded targets changed
    assert np.allclose(reply["state"]["target_b"], [0.25, 0.05, 0.15], atol=1e-6)


def test_policies_are_loaded_only_from_the_policy_roots(sim, tmp_path):
    with pytest.raises(SimError) as err:
        sim.call("run_policy", policy={"export": str(tmp_path)}, max_steps=5)
    assert err.value.code == "forbidden"
    with pytest.raises(SimError) as err:
        sim.call("run_policy", policy={"gateway": "tcp://10.0.0.1:5555"}, max_steps=5)
    assert err.value.code == "bad_request" and "loopback" in err.value.message


def test_rollouts_are_recorded_in_plays_format(sim, export_dir):
    reply = sim.call("record", policy={"export": str(export_dir)}, episodes=3, name="t-rollouts")["record"]
    out = Path(reply["dir"])
    episodes = sorted(out.glob("episode_*.npz"))
    assert len(episodes) == 3 and reply["metrics"]["episodes"] == 3
    ep = np.load(episodes[0])
    assert ep["obs"].shape == (90, 29) and ep["actions"].shape == (90, 5) and ep["target_pos"].shape == (90, 3)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["task"] == TASK and meta["episodes"] == 3 and "tracking" in meta["reward_terms"]
    with pytest.raises(SimError, match="exists already"):
        sim.call("record", policy={"export": str(export_dir)}, episodes=1, name="t-rollouts")
    with pytest.raises(SimError, match="letters"):
        sim.call("record", policy={"export": str(export_dir)}, episodes=1, name="../x")


def test_a_second_start_is_refused_and_stop_then_start_works(sim):
    with pytest.raises(SimError) as err:
        sim.call("start", task=TASK)
    assert err.value.code == "busy"
    assert sim.call("stop")["stopped"] is True
    with pytest.raises(SimError) as err:
        sim.call("joint_state")
    assert err.value.code == "not_started"
    with pytest.raises(SimError) as err:
        sim.call("start", task=TASK, overrides=["env.observations.policy.joint_pos.func=os:system"])
    assert err.value.code == "start_failed" and "names code" in err.value.message
    with pytest.raises(SimError, match="trackng"):
        sim.call("start", task=TASK, overrides=["env.rewards.trackng.weight=1"])
    assert sim.call("start", task=TASK)["spec"]["task"] == TASK


def test_malformed_messages_get_coded_errors_and_the_service_keeps_serving(sim):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(sim.endpoint)
    try:
        for payload, code in ((b"\xc1\xff", "bad_msgpack"), (msgpack.packb([1, 2]), "bad_request"),
                              (msgpack.packb({"type": "exec", "code": "print(1)"}), "unknown_type"),
                              (msgpack.packb({"type": "step", "steps": 10**9}), "bad_request")):
            sock.send(payload)
            assert sock.poll(10000)
            reply = msgpack.unpackb(sock.recv())
            assert reply["ok"] is False and reply["error"]["code"] == code
            assert "Traceback" not in reply["error"]["message"]
    finally:
        sock.close()
        ctx.term()
    assert sim.call("ping")["ok"]


def test_a_realtime_service_steps_itself_and_refuses_manual_steps(tmp_path, export_dir):
    proc, client = _service(tmp_path, export_dir.parent, "--realtime")
    try:
        first = client.call("joint_state")["state"]["step"]
        deadline = time.monotonic() + 30
        while client.call("joint_state")["state"]["step"] < first + 15 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.call("joint_state")["state"]["step"] >= first + 15
        with pytest.raises(SimError) as err:
            client.call("step", steps=1)
        assert err.value.code == "realtime"
        # a policy run is ticked by the clock: the request returns at once, status follows it to the end
        run = client.call("run_policy", policy={"export": str(export_dir)}, max_steps=15, until_reached=False)["policy"]
        assert run["done"] is False and run["steps"] < 15
        deadline = time.monotonic() + 30
        while not client.call("status")["policy"]["done"] and time.monotonic() < deadline:
            time.sleep(0.1)
        final = client.call("status")["policy"]
        assert final["done"] and final["steps"] == 15 and final["stopped"] == "max_steps"
    finally:
        client.close()
        proc.stop()
    assert not proc.alive()


def test_the_viewer_window_mirrors_the_simulation_on_a_display(tmp_path, export_dir):
    import shutil

    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        pytest.skip("xvfb-run is not installed (apt: xvfb xauth): no display to open the viewer on")
    proc = ServiceProcess([xvfb, "-a", sys.executable, "-m", "roarm_lab.sim_service", "--bind", "tcp://127.0.0.1:*",
                           "--task", TASK, "--viewer", "--policy-root", str(export_dir.parent), "--data-dir",
                           str(tmp_path)], r"endpoint=(\S+) .*gl=(\S+)", tmp_path / "service.log").start()
    client = SimClient(proc.match.group(1), timeout_ms=60000)
    try:
        assert proc.match.group(2) == "default"  # a display: MUJOCO_GL is left to it, not forced to egl
        state = client.call("step", steps=10)["state"]
        assert state["step"] == 10
        assert client.call("render", camera="side", width=160, height=120)["png"][:4] == b"\x89PNG"
        client.call("shutdown", timeout_ms=10000)
        proc.proc.wait(30)  # xvfb-run takes its X server down after the service exits
    finally:
        client.close()
        code = proc.stop()
    assert code == 0, proc.log_tail()
