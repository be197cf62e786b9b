"""The simulator service as users run it: its own process, a real ZeroMQ socket, the task's real environment,
MuJoCo's offscreen renderer, the project's exporter and rollout format."""

from __future__ import annotations

import io
import json
import os
import secrets
import struct
import subprocess
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
SECRET_ENV = "ROARM_SIM_SECRET"  # the documented name a starter hands the secret over in
SECRET = secrets.token_hex(32)


def _env(secret: str | None = SECRET) -> dict[str, str]:
    """This process's environment with the secret a starter hands over (none: a service started by hand)."""
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    if secret is not None:
        env[SECRET_ENV] = secret
    return env


def _service(tmp: Path, policy_root: Path, *extra: str) -> tuple[ServiceProcess, SimClient]:
    proc = ServiceProcess([sys.executable, "-m", "roarm_lab.sim_service", "--bind", "tcp://127.0.0.1:*", "--task", TASK,
                           "--policy-root", str(policy_root), "--data-dir", str(tmp), *extra],
                          r"endpoint=(\S+)", tmp / "service.log", env=_env()).start()
    return proc, SimClient(proc.match.group(1), secret=SECRET, timeout_ms=60000)


def _bare(tmp: Path, *extra: str) -> ServiceProcess:
    """A service with no environment yet (quick to start), handed ``SECRET`` by its starter."""
    return ServiceProcess([sys.executable, "-m", "roarm_lab.sim_service", "--bind", "tcp://127.0.0.1:*", "--data-dir",
                           str(tmp), *extra], r"endpoint=(\S+)", tmp / "service.log", env=_env()).start()


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
    for bad, says in (("env.scene.num_envs=9000", "from 1 to 8192"),  # the control plane's rules, as for a face
                      ("env.commands.ee_target.joint_box={base:[0,1],x:'os:system'}", "no key")):
        with pytest.raises(SimError, match=says):
            sim.call("start", task=TASK, overrides=[bad])
    assert sim.call("start", task=TASK)["spec"]["task"] == TASK


def test_malformed_messages_get_coded_errors_and_the_service_keeps_serving(sim):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(sim.endpoint)
    try:
        for payload, code in ((b"\xc1\xff", "bad_msgpack"), (msgpack.packb([1, 2]), "bad_request"),
                              (msgpack.packb({"type": "exec", "code": "print(1)"}), "unknown_type"),
                              (msgpack.packb({"type": "step", "steps": 10**9, "secret": SECRET,
                                              "client": sim.client_id}), "bad_request")):
            sock.send(payload)
            assert sock.poll(10000)
            reply = msgpack.unpackb(sock.recv())
            assert reply["ok"] is False and reply["error"]["code"] == code
            assert "Traceback" not in reply["error"]["message"]
    finally:
        sock.close()
        ctx.term()
    assert sim.call("ping")["ok"]


def test_the_launch_environment_belongs_to_the_first_client_that_drives_it(sim):
    sim.call("reset")  # the fixture's client drives it (and so owns it, if no earlier test made it the owner)
    other = SimClient(sim.endpoint, secret=SECRET, timeout_ms=60000, name="other")
    try:
        with pytest.raises(SimError) as err:
            other.call("stop")
        assert err.value.code == "forbidden"
        assert other.call("joint_state")["state"]["step"] >= 0
        assert sim.call("status")["owner"]["yours"] is True and other.call("status")["owner"]["yours"] is False
    finally:
        other.close()


# ---------------------------------------------------------------------------- access (issue 25, items 11 and 12)
def _status_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024.0 for line in f if line.startswith(field + ":"))


def _peak_rss_mb(pid: int) -> float:
    """The process's peak RSS since the last reset (``clear_refs`` 5)."""
    return _status_mb(pid, "VmHWM")


def _rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS")


def test_a_client_without_the_secret_can_only_say_hello_and_ping(tmp_path):
    proc = _bare(tmp_path)
    endpoint = proc.match.group(1)
    owner = SimClient(endpoint, secret=SECRET, timeout_ms=60000)
    strangers = [SimClient(endpoint, timeout_ms=20000), SimClient(endpoint, secret="0" * 64, timeout_ms=20000)]
    try:
        for stranger in strangers:
            assert stranger.call("ping")["ok"]
            for kind, fields in (("shutdown", {}), ("start", {"task": TASK}), ("stop", {}), ("step", {"steps": 1}),
                                 ("status", {})):
                with pytest.raises(SimError) as err:
                    stranger.call(kind, **fields)
                assert err.value.code == "unauthorized" and SECRET_ENV in err.value.message, (kind, err.value)
            assert proc.alive() and stranger.hello()["authenticated"] is False
        assert owner.hello()["authenticated"] is True
        status = owner.call("status")
        assert status["started"] is False and status["refused"] == 10  # the strangers' start built nothing
        owner.call("shutdown")
        proc.proc.wait(30)
    finally:
        for client in (owner, *strangers):
            client.close()
        code = proc.stop()
    assert code == 0, proc.log_tail()


def test_an_environment_belongs_to_the_client_that_started_it(tmp_path, export_dir):
    proc = _bare(tmp_path, "--no-shutdown", "--policy-root", str(export_dir.parent))
    endpoint = proc.match.group(1)
    first = SimClient(endpoint, secret=SECRET, timeout_ms=60000, name="panel")
    second = SimClient(endpoint, secret=SECRET, timeout_ms=60000, name="chat")
    policy = {"export": str(export_dir)}
    try:
        first.call("start", task=TASK)
        first.call("step", steps=3)
        for kind, fields in (("stop", {}), ("reset", {}), ("step", {"steps": 1}),
                             ("set_target", {"target": [0.25, 0, 0.15]}), ("set_joint_targets", {"targets": [0.0] * 5}),
                             ("act", {"action": [0.0] * 5}),
                             ("run_policy", {"policy": policy, "max_steps": 5}), ("stop_policy", {}),
                             ("record", {"policy": policy, "episodes": 1, "name": "theirs"})):
            with pytest.raises(SimError) as err:
                second.call(kind, **fields)
            assert err.value.code == "forbidden" and "'panel'" in err.value.message, (kind, err.value)
        # reads are open to any client with the secret; nothing above changed the environment
        assert second.call("joint_state")["state"]["step"] == 3
        assert second.call("observation")["observation"]["policy"]["vector"]
        assert second.call("render", width=64, height=64)["png"][:4] == b"\x89PNG"
        status = second.call("status")
        assert status["state"]["step"] == 3 and status["owner"]["name"] == "panel" and not status["owner"]["yours"]
        assert not (tmp_path / "rollouts" / "theirs").exists()
        with pytest.raises(SimError) as err:
            second.call("start", task=TASK)
        assert err.value.code == "busy"
        with pytest.raises(SimError) as err:  # the secret is not enough where the starter said --no-shutdown
            first.call("shutdown")
        assert err.value.code == "forbidden"
        assert first.call("stop")["stopped"] is True
        second.call("start", task=TASK)  # now the second client's
        with pytest.raises(SimError, match="'chat'"):
            first.call("stop")
        again = SimClient(endpoint, secret=SECRET, timeout_ms=60000, client_id=second.client_id)  # after a restart
        try:
            assert again.call("stop")["stopped"] is True
        finally:
            again.close()
    finally:
        first.close()
        second.close()
        proc.stop()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the service's RSS from /proc (Linux)")
def test_a_frame_above_the_size_cap_is_dropped_before_it_is_buffered(tmp_path):
    proc = _bare(tmp_path)
    client = SimClient(proc.match.group(1), secret=SECRET, timeout_ms=60000)
    ctx = zmq.Context()
    big = ctx.socket(zmq.DEALER)
    big.setsockopt(zmq.LINGER, 0)
    events = big.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    big.connect(client.endpoint)
    try:
        assert client.call("status")["started"] is False
        try:
            Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # start the peak from here
        except OSError:
            pass
        before = _peak_rss_mb(proc.pid)
        big.send(bytes(300 << 20), copy=False)
        # the service either answers the frame (it read all of it) or drops the connection (it did not)
        poller = zmq.Poller()
        poller.register(big, zmq.POLLIN)
        poller.register(events, zmq.POLLIN)
        assert poller.poll(120_000), "neither a reply nor a disconnect"
        grown = _peak_rss_mb(proc.pid) - before
        assert grown < 64, f"the service's peak RSS grew by {grown:.0f} MB"
        assert big not in dict(poller.poll(0)), "the 300 MB frame was read and answered"
        assert client.call("ping")["ok"] and proc.alive()
    finally:
        big.disable_monitor()
        events.close(0)
        big.close(0)
        ctx.term()
        client.close()
        proc.stop()


def _raw(endpoint: str, ctx: zmq.Context, identity: bytes | None = None) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if identity is not None:
        sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.connect(endpoint)
    return sock


def _pinged(sock: zmq.Socket) -> bool:
    sock.send(msgpack.packb({"type": "ping"}))
    return bool(sock.poll(10000)) and msgpack.unpackb(sock.recv())["ok"]


def test_claiming_the_routing_id_the_service_would_generate_next_does_not_kill_it(tmp_path):
    """libzmq aborts a ROUTER whose generated id collides with a claimed one; unseeded, its first is 0x6b8b4567."""
    proc = _bare(tmp_path)
    ctx = zmq.Context()
    try:
        claims = [_raw(proc.match.group(1), ctx, b"\0" + struct.pack(">I", 0x6B8B4567 + k)) for k in range(32)]
        assert all(_pinged(sock) for sock in claims)
        plain = [_raw(proc.match.group(1), ctx) for _ in range(8)]  # the service generates their ids
        assert all(_pinged(sock) for sock in plain) and proc.alive()
    finally:
        ctx.destroy(0)
        proc.stop()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the service's RSS from /proc (Linux)")
def test_connections_that_reuse_a_live_routing_id_do_not_grow_the_service(tmp_path):
    """With ROUTER_HANDOVER off, libzmq keeps every refused duplicate-id connection and the data it sent."""
    proc = _bare(tmp_path)
    ctx = zmq.Context()
    try:
        holder = _raw(proc.match.group(1), ctx, b"held-id")
        assert _pinged(holder)
        before = _rss_mb(proc.pid)
        for _ in range(1500):  # each one sends 100 kB under the held id, then goes
            sock = _raw(proc.match.group(1), ctx, b"held-id")
            sock.send(b"\x00" * 100_000)
            time.sleep(0.002)
            sock.close(0)
        assert _pinged(_raw(proc.match.group(1), ctx))
        grown = _rss_mb(proc.pid) - before
        assert grown < 60, f"the service's RSS grew by {grown:.0f} MB"  # a leak keeps 1500 x 100 kB = 150 MB
    finally:
        ctx.destroy(0)
        proc.stop()


def test_a_service_started_by_hand_writes_a_private_secret_file_and_names_it(tmp_path):
    proc = ServiceProcess([sys.executable, "-m", "roarm_lab.sim_service", "--bind", "tcp://127.0.0.1:*", "--data-dir",
                           str(tmp_path)], r"endpoint=(\S+) .*secret=file:(.+)$", tmp_path / "service.log",
                          env=_env(None)).start()
    path = Path(proc.match.group(2))
    stranger = SimClient(proc.match.group(1), timeout_ms=20000)
    try:
        assert path.parent == tmp_path and path.stat().st_mode & 0o777 == 0o600
        secret = path.read_text().strip()
        assert len(secret) >= 32
        with pytest.raises(SimError) as err:
            stranger.call("status")
        assert err.value.code == "unauthorized" and str(path) in err.value.message
        with SimClient(proc.match.group(1), secret=secret, timeout_ms=20000) as owner:
            assert owner.call("status")["started"] is False
            owner.call("shutdown")
        proc.proc.wait(30)
    finally:
        stranger.close()
        proc.stop()
    assert not path.exists()  # the service removed its secret when it exited


def _mode_0644(tmp: Path) -> list[str]:
    (tmp / "secret").write_text(SECRET)
    (tmp / "secret").chmod(0o644)
    return ["--secret-file", str(tmp / "secret")]


def _short(tmp: Path) -> list[str]:
    (tmp / "secret").write_text("too-short")
    (tmp / "secret").chmod(0o600)
    return ["--secret-file", str(tmp / "secret")]


def _link(tmp: Path) -> list[str]:
    (tmp / "real").write_text(SECRET)
    (tmp / "real").chmod(0o600)
    (tmp / "secret").symlink_to(tmp / "real")
    return ["--secret-file", str(tmp / "secret")]


@pytest.mark.parametrize("setup,secret,needle", [(_mode_0644, None, "chmod 600"), (_short, None, "at least 32"),
                                                 (_link, None, "regular file"),
                                                 (lambda tmp: [], "too-short", "at least 32")],
                         ids=["file-mode-644", "file-short", "file-symlink", "env-short"])
def test_a_secret_others_can_read_or_too_short_is_refused_in_one_line(tmp_path, setup, secret, needle):
    out = subprocess.run([sys.executable, "-m", "roarm_lab.sim_service", "--bind", "tcp://127.0.0.1:*", "--data-dir",
                          str(tmp_path), *setup(tmp_path)], capture_output=True, text=True, timeout=60,
                         env=_env(secret))
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1 and needle in errors[0], out.stderr
    assert "Traceback" not in out.stderr and not out.stdout


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
                           str(tmp_path)], r"endpoint=(\S+) .*gl=(\S+)", tmp_path / "service.log", env=_env()).start()
    client = SimClient(proc.match.group(1), secret=SECRET, timeout_ms=60000)
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
