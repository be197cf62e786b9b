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
    """The bridge's observation, with targets from the exported action convention, equals the simulator's."""
    from roarm_lab.policy import ActionConvention, ClientTargets
    from roarm_lab.mdp import hand_position_b

    def noiseless(cfg):
        cfg.observations.policy.enable_corruption = False

    env = make_reach_env(num_envs=1, edit=noiseless)
    meta = json.loads((export_dir / "policy.json").read_text())
    arm = ArmObservation(meta)  # built after the env: resolving its terms must not disturb the simulator's
    convention, sent = ActionConvention(meta), ClientTargets()
    robot, command = env.scene["robot"], env.command_manager.get_term("ee_target")

    servos = env.action_manager.get_term("arm_action")

    def arm_obs() -> np.ndarray:
        hand = hand_position_b(robot, command.body_idx)[0]
        q = robot.data.joint_pos.torch[0].clone()
        q[:5] = servos.measured_joint_pos[0]  # what the arm's servos report
        return arm(q.numpy(), hand.numpy(), env.command_manager.get_command("ee_target")[0].numpy(),
                   env.action_manager.action[0].numpy(), sent.target)

    env.reset()
    arm.reset()
    obs_arm = arm_obs()
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        action = torch.rand(1, 5, generator=gen) * 6 - 3  # past max_step on some joints
        convention.to_targets(action[0].numpy(), obs_arm, sent)
        obs, *_ = env.step(action)
        expected = obs["policy"][0].numpy()
        assert np.abs(expected[5:10]).max() > 1e-3  # the arm moves: the velocity term is exercised
        obs_arm = arm_obs()
        np.testing.assert_allclose(obs_arm, expected, atol=1e-5)


def test_step_log_checkpoints_only_new_records_off_thread_and_survives_a_crash(tmp_path):
    from roarm_lab.real.steplog import StepLog, load_step_log

    log = StepLog(tmp_path / "steps.npz")
    for i in range(10):
        log.append(t=float(i), error=0.1 * i, q=np.full(6, float(i)))
        if i in (3, 7):
            log.checkpoint()
    parts = tmp_path / "steps.parts"
    assert _wait(lambda: len(list(parts.glob("*.npz"))) == 2)
    sizes = [len(np.load(f)["t"]) for f in sorted(parts.glob("*.npz"))]
    assert sizes == [4, 4]  # each checkpoint writes only the records since the last one
    crashed = load_step_log(tmp_path / "steps.npz")  # no save(): what a crash would leave
    np.testing.assert_array_equal(crashed["t"], np.arange(8.0))
    assert log.last_error() == pytest.approx(0.9) and len(log) == 10
    log.save()
    assert not parts.exists()
    saved = load_step_log(tmp_path / "steps.npz")
    np.testing.assert_array_equal(saved["t"], np.arange(10.0))
    assert saved["q"].shape == (10, 6)
    with pytest.raises(KeyError, match="fields changed"):
        log.append(t=1.0, error=0.0)
    with pytest.raises(FileNotFoundError, match="no step log"):
        load_step_log(tmp_path / "other.npz")


def test_step_log_keeps_records_when_a_part_cannot_be_written(tmp_path, caplog):
    from roarm_lab.real.steplog import StepLog, load_step_log

    (tmp_path / "steps.parts").write_text("a file where the parts folder should be")
    log = StepLog(tmp_path / "steps.npz")
    for i in range(6):
        log.append(t=float(i), error=0.0)
        if i == 2:
            log.checkpoint()
    assert _wait(lambda: log._write_error is not None)
    log.checkpoint()  # the control loop goes on: a warning, not an exception
    assert "could not be written" in caplog.text
    log.save()
    np.testing.assert_array_equal(load_step_log(tmp_path / "steps.npz")["t"], np.arange(6.0))


# ---------------------------------------------------------------------------- driver against the emulator
from roarm_lab.real.bridge import Bridge, BridgeConfig, LocalPolicy, load_meta, write_report  # noqa: E402
from roarm_lab.real.calibration_routine import by_hand_limits, calibrate  # noqa: E402
from roarm_lab.real.calibration import Calibration  # noqa: E402
from roarm_lab.real.driver import SAFE_LOWER, SAFE_UPPER, RoArmDriver  # noqa: E402
from roarm_lab.real.emulator import ArmEmulator, EmulatorConfig  # noqa: E402


def _wait(predicate, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def emulator():
    with ArmEmulator(EmulatorConfig(latency_s=0.05)) as emu:
        yield emu


def test_driver_clamps_to_the_safe_box_rate_limits_and_stops_by_torque_hold(emulator):
    with RoArmDriver.serial(emulator.port) as driver:
        assert driver.feedback().age(time.monotonic()) < 0.2
        sent = driver.command_joints([0.2, 2.0, 1.2, 0.0, 0.0, 0.3])  # shoulder far outside the box
        assert sent.clamped.tolist() == [False, True, False, False, False, False]
        assert _wait(lambda: (emulator.last_command or {}).get("T") == 102)
        assert emulator.last_command["shoulder"] == pytest.approx(1.1, abs=1e-4)
        assert emulator.last_command["hand"] == pytest.approx(math.pi - 0.3, abs=1e-4)

        before = driver.stats.joint_commands_sent
        start = time.monotonic()
        for i in range(60):  # 200 Hz of requests: the driver sends the newest at most at 30 Hz
            driver.command_joints([0.2, 0.3 + 0.001 * i, 1.2, 0.0, 0.0, 0.3])
            time.sleep(0.005)
        elapsed = time.monotonic() - start
        assert driver.stats.joint_commands_sent - before <= elapsed * 30 + 2
        assert driver.stats.joint_commands_superseded >= 30

        assert _wait(lambda: np.abs(emulator.true_joint_pos()[1] - 0.359).max() < 0.05, timeout=4.0)
        driver.torque(False)
        assert _wait(lambda: not emulator.torque_enabled)
        driver.stop()
        assert _wait(lambda: emulator.torque_enabled and (emulator.last_command or {}).get("T") == 102)
        held = np.array([emulator.last_command[j.firmware_field] for j in JOINTS[:5]])
        np.testing.assert_allclose(held, driver.feedback().q[:5], atol=0.02)  # holds where it is
        assert emulator.last_command["spd"] > 0  # a hold is a move the policy did not ask for: bounded speed
        assert not emulator.estopped  # never T:0
        assert driver.stats.joint_commands_sent == len(emulator.joint_commands)  # every frame counted


def test_feedback_limits_box_margin_and_servo_speed():
    from roarm_lab.real.plausibility import BOX_MARGIN_RAD, FRAME_TIME_SLACK_S, FeedbackLimits
    from roarm_lab.real.protocol import Feedback

    limits = FeedbackLimits.servo_driven()

    def frame(t: float, **joints: float) -> Feedback:
        q = np.array([joints.get(j.short, h) for j, h in zip(JOINTS, NAMED_POSES["home"])])
        return Feedback(t, q, np.zeros(3), np.zeros(6), {j.feedback_field: float(v) for j, v in zip(JOINTS, q)})

    ready = frame(0.0, wrist=NAMED_POSES["ready"][3])  # 0.05 rad outside the box, where calibration leaves it
    assert limits.fault(ready, None) is None
    fault = limits.fault(frame(0.0, wrist=1.4 + BOX_MARGIN_RAD + 0.01), None)
    assert fault is not None and fault.joint.short == "wrist" and "[-1.000, 1.400]" in str(fault)
    previous = frame(0.0)
    speed = JOINTS[0].velocity
    assert limits.fault(frame(0.04, base=0.9 * speed * (0.04 + FRAME_TIME_SLACK_S)), previous) is None
    jump = limits.fault(frame(0.04, base=1.1 * speed * (0.04 + FRAME_TIME_SLACK_S)), previous)
    assert jump is not None and jump.joint.short == "base" and "faster than the servos" in str(jump)


def test_a_reading_that_jumps_faster_than_a_servo_stops_the_driver():
    with ArmEmulator(EmulatorConfig(latency_s=0.05)) as emu, RoArmDriver.serial(emu.port) as driver:
        emu.report_fault("base", 3.0)  # inside the box, but 3 rad away from the last reading
        assert _wait(lambda: driver.error is not None)
        assert "base 3 rad" in str(driver.error) and "faster than the servos" in str(driver.error)
        assert driver.feedback().q[0] == pytest.approx(0.0, abs=0.02)  # never became the state


def test_driver_drops_bad_frames_and_reconnects_after_a_cable_pull():
    cfg = EmulatorConfig(latency_s=0.05, garbage_rate=0.2, unpowered_rate=0.1, seed=3)
    with ArmEmulator(cfg) as emu, RoArmDriver.serial(emu.port, reconnect_s=0.2) as driver:
        assert _wait(lambda: driver.stats.frames > 20)
        dropped = driver.stats.dropped
        assert dropped["unpowered"] > 0 and dropped["garbage"] + dropped["torn"] > 0
        assert not np.isclose(driver.feedback().q[0], math.pi)  # an unpowered frame never becomes state
        emu.pull_cable(0.8)
        assert _wait(lambda: not driver.stats.connected, timeout=2.0)
        pulled_at = time.monotonic()
        assert _wait(lambda: driver.stats.connected and driver.feedback().received > pulled_at + 0.5, timeout=4.0)
        assert driver.stats.reconnects >= 1
        driver.command_joints([0.4, 0.0, 1.5708, 0.0, 0.0, 0.0])  # and it still commands the arm
        assert _wait(lambda: abs(emu.true_joint_pos()[0] - 0.4) < 0.05, timeout=4.0)


def test_http_driver_reads_by_query_and_commands():
    with ArmEmulator(EmulatorConfig(latency_s=0.05, http_port=0)) as emu, \
            RoArmDriver.http(emu.http_url) as driver:
        first = driver.feedback()
        assert driver.wait_feedback(newer_than=first.received, timeout=1.0) is not None  # T:105 at query_hz
        driver.command_joints([-0.3, 0.0, 1.5708, 0.0, 0.0, 0.0])
        assert _wait(lambda: abs(driver.feedback().q[0] + 0.3) < 0.05, timeout=4.0)


def test_calibration_routine_recovers_the_servo_offsets(tmp_path):
    offsets = (0.05, -0.03, 0.02, 0.04, -0.02, 0.01)
    with ArmEmulator(EmulatorConfig(latency_s=0.05, calibration_offset=offsets)) as emu, \
            RoArmDriver.serial(emu.port, limits=by_hand_limits()) as driver:
        poses = iter(["home", "observe", "ready"])

        def person(prompt: str) -> None:  # moves the limp arm by hand to the pose the prompt names
            name = next(poses)
            # the firmware acts on T:210 when its reader gets the line, a few ms after the driver wrote it
            assert f"'{name}'" in prompt and _wait(lambda: not emu.torque_enabled, timeout=1.0)
            emu.move_by_hand(NAMED_POSES[name])
            time.sleep(0.15)

        cal = calibrate(driver, person, str(tmp_path / "arm.yaml"))
        assert _wait(lambda: emu.torque_enabled)
    np.testing.assert_allclose(cal.offsets, offsets, atol=0.01)
    np.testing.assert_allclose(Calibration.load(tmp_path / "arm.yaml").offsets, cal.offsets, atol=1e-4)
    with pytest.raises(ValueError, match="inside the safe joint box"):
        Calibration(lower=SAFE_LOWER - 0.1)


# ---------------------------------------------------------------------------- bridge
def _bridge(driver, export_dir, tmp_path, **cfg):
    meta = load_meta(export_dir)
    targets = np.array([[0.25, 0.05, 0.20], [0.20, -0.10, 0.15]])
    said: list[str] = []
    config = BridgeConfig(log_dir=tmp_path / "run", start_speed_rad_s=2.0, say=said.append, **cfg)
    return Bridge(driver, meta, LocalPolicy(export_dir), targets, config), said


def test_bridge_holds_on_a_pulled_cable_recovers_and_loses_no_log_record(export_dir, tmp_path):
    cfg = EmulatorConfig(latency_s=0.05, garbage_rate=0.05, seed=1)
    with ArmEmulator(cfg) as emu, RoArmDriver.serial(emu.port, reconnect_s=0.2) as driver:
        bridge, said = _bridge(driver, export_dir, tmp_path, target_time_s=2.0, duration_s=4.0)
        import threading

        threading.Timer(1.5, emu.pull_cable, args=(0.8,)).start()  # ~1 s into the policy phase
        summary = bridge.run()
        write_report(bridge, summary)
    data = dict(np.load(tmp_path / "run" / "steps.npz"))
    period = bridge.period
    assert len(data["t"]) == summary["steps"] >= 0.9 * 4.0 / period  # every step is a record
    # the loop never blocked on the missing link (the pull lasts 0.8 s; a loaded machine may delay a step)
    assert np.all(np.diff(data["t"]) > 0) and np.max(np.diff(data["t"])) < 0.5
    stale = data["stale"]
    assert stale.sum() >= 0.4 / period  # held while the cable was out ...
    assert not stale[-10:].any() and data["sent"][-10:].all()  # ... and drove again after
    assert any("stale" in s for s in said) and any("resumes" in s for s in said)
    edges = np.flatnonzero(np.diff(np.r_[0, stale.astype(int), 0]))  # each hold window: [start, stop)
    for start, stop in zip(edges[::2], edges[1::2]):  # a loaded machine can see more than one
        held = data["command"][max(start - 1, 0):stop]
        assert np.all(held == held[0])  # no new target while holding: the last one sent before the window
    assert np.all(data["command"] >= SAFE_LOWER - 1e-9) and np.all(data["command"] <= SAFE_UPPER + 1e-9)
    assert summary["max_command_outside_safe_box_rad"] == 0.0
    assert (tmp_path / "run" / "tracking_error.png").stat().st_size > 1000
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == summary["steps"]


def test_dry_run_prints_commands_and_moves_nothing(export_dir, tmp_path):
    printed: list[dict] = []
    with ArmEmulator(EmulatorConfig(latency_s=0.05)) as emu, \
            RoArmDriver.serial(emu.port, dry_run=True, on_dry_run=printed.append) as driver:
        start = emu.true_joint_pos()
        bridge, _ = _bridge(driver, export_dir, tmp_path, target_time_s=0.5, duration_s=1.0)
        bridge.run()
        assert (emu.last_command or {}).get("T") in (None, 105, 605)  # queries only
        np.testing.assert_allclose(emu.true_joint_pos(), start, atol=0.02)
    assert sum(cmd["T"] == 102 for cmd in printed) >= 20 and any(cmd["T"] == 210 for cmd in printed)


def test_run_real_cli_drives_the_emulator_and_refuses_bad_input(export_dir, tmp_path, capsys):
    from roarm_lab.real.cli import main

    logs, stop = tmp_path / "logs", tmp_path / "STOP"
    common = ["--policy", str(export_dir), "--robot", "emu", "--log-dir", str(logs), "--stop-file", str(stop),
              "--emu-arg=--latency-s=0.05"]
    assert main(common + ["--target", "0.2", "0.05", "0.2", "--target-time-s", "1.5"]) == 0
    out = capsys.readouterr().out
    (run,) = logs.iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert f"log: {run}/steps.npz" in out and summary["targets"] == 1
    steps = np.load(run / "steps.npz")
    assert len(steps["t"]) == summary["steps"] >= 0.9 * 1.5 * 30 and steps["sent"].all()
    assert summary["max_command_outside_safe_box_rad"] == 0.0
    # bad input: exit status 2 and one line that names the problem and the fix; no new run is started
    (tmp_path / "flat.yaml").write_text("[[0.1, 0.2]]")
    assert main(common + ["--targets", str(tmp_path / "flat.yaml")]) == 2
    assert "expected a list of [x, y, z] in metres" in capsys.readouterr().err
    assert main(common[:1] + [str(tmp_path)] + common[2:] + ["--random", "2"]) == 2
    assert "no policy.json" in capsys.readouterr().err
    stop.touch()
    assert main(common + ["--random", "2"]) == 2
    assert "delete it to run" in capsys.readouterr().err
    assert len(list(logs.iterdir())) == 1


def test_start_pose_outside_the_calibrated_limits_is_refused_before_any_motion(export_dir, tmp_path):
    from roarm_lab.real.bridge import BridgeError

    upper = np.array([j.upper for j in JOINTS])
    upper[2] = 1.2  # this arm's elbow stops short of home's pi/2
    with ArmEmulator(EmulatorConfig(latency_s=0.05)) as emu, \
            RoArmDriver.serial(emu.port, calibration=Calibration(upper=upper)) as driver:
        start = emu.true_joint_pos()
        bridge, _ = _bridge(driver, export_dir, tmp_path, target_time_s=0.5, duration_s=1.0)
        with pytest.raises(BridgeError, match=r"outside this arm's calibrated limits on \['elbow'\]"):
            bridge.run()
        time.sleep(0.2)
        np.testing.assert_allclose(emu.true_joint_pos(), start, atol=0.02)
