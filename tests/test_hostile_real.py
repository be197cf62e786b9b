"""The real-arm side against bad files and faults (issue 11, item 7 and the smaller ones; issue 25, items 13-16): the
firmware emulator on a real pseudo-terminal, the run_real CLI, files a user could plant, feedback a servo could send."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from roarm_lab.real.calibration import Calibration
from roarm_lab.real.driver import RoArmDriver
from roarm_lab.real.emulator import ArmEmulator, EmulatorConfig
from roarm_lab.real.protocol import encode, joints_command
from test_real import _wait


# ---------------------------------------------------------------------------- 7. NaN on the serial line
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_no_non_finite_number_is_encoded_for_the_arm(value):
    with pytest.raises(ValueError, match="finite"):
        joints_command([0.0, value, 1.57, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="base=nan|base=inf|base=-inf"):
        encode({"T": 102, "base": value, "shoulder": 0.0})
    with pytest.raises(ValueError, match="finite"):
        encode({"T": 114, "led": [1, 2]})


def test_a_non_finite_command_is_refused_at_the_wire_and_the_driver_keeps_working():
    with ArmEmulator(EmulatorConfig(latency_s=0.05)) as emu, RoArmDriver.serial(emu.port) as driver:
        driver._enqueue({"T": 102, "base": math.nan, "shoulder": 0.0, "elbow": 1.57, "wrist": 0.0, "roll": 0.0,
                         "hand": 3.14, "spd": 0, "acc": 10})  # as any future bug upstream would hand it over
        assert _wait(lambda: driver.stats.commands_refused == 1)
        assert (emu.last_command or {}).get("T") != 102
        driver.command_joints([0.3, 0.0, 1.5708, 0.0, 0.0, 0.0])  # the owner thread is alive and commands
        assert _wait(lambda: (emu.last_command or {}).get("T") == 102)
        assert all(math.isfinite(v) for v in emu.last_command.values())


@pytest.mark.parametrize("text, field", [
    ("offsets: {base: .nan}", "offsets.base"), ("offsets: {base: abc}", "offsets.base"),
    ("offsets: {elbow: .inf}", "offsets.elbow"), ("limits: {wrist: [.nan, 1.0]}", "limits.wrist"),
    ("limits: {base: 5}", "limits.base"), ("offsets: [1, 2]", "offsets must map"),
    ("limits: {base: [-5, 5]}", "limits.base"), ("offsets: {nose: 0.1}", "unknown joint 'nose'"),
    ("offsets: {base: true}", "offsets.base"), ("- 1\n- 2", "must be a mapping"), ("bogus: 1", "unknown key 'bogus'"),
])
def test_calibration_files_are_checked_as_a_whole_and_name_the_field(tmp_path, text, field):
    path = tmp_path / "arm.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("(", r"\(")) as info:
        Calibration.load(path)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="finite"):
        Calibration(offsets=np.array([math.nan, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="finite"):
        Calibration(lower=np.full(6, math.nan))  # NaN compares false: it used to pass the box check


def test_a_calibration_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "arm.yaml")
    with pytest.raises(ValueError, match="not a regular file"):
        Calibration.load(tmp_path / "arm.yaml")


def _run_real(export_dir, tmp_path, *extra: str) -> tuple[int, str]:
    from roarm_lab.real.cli import main

    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["--policy", str(export_dir), "--robot", "emu", "--log-dir", str(tmp_path / "logs"),
                     "--stop-file", str(tmp_path / "STOP"), *extra])
    return code, err.getvalue()


@pytest.mark.parametrize("content, why", [
    ("[[0.2, 0.05, .nan]]", "target 0"), ("[[0.2, 0.05, 0.2], [0.1, inf, 0.1]]", "target 1"),
    ("[[200, 50, 200]]", "millimetres"), ("[[0.2, 0.05, abc]]", "target 0"), ("7", "non-empty list"),
])
def test_bad_targets_are_refused_before_anything_moves(export_dir, tmp_path, content, why):
    (tmp_path / "targets.yaml").write_text(content.replace("inf", ".inf"))
    code, err = _run_real(export_dir, tmp_path, "--targets", str(tmp_path / "targets.yaml"))
    assert code == 2 and why in err and err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "logs").exists()  # no run was started, no emulator, no motion


@pytest.mark.parametrize("flag, value", [("--rate-hz", "0"), ("--target-time-s", "-1"), ("--max-step-rad", "nan"),
                                          ("--random", "0"), ("--stale-after-s", "0")])
def test_zero_and_negative_settings_of_run_real_are_one_line_errors(export_dir, tmp_path, flag, value):
    code, err = _run_real(export_dir, tmp_path, flag, value, "--target", "0.2", "0.05", "0.2")
    assert code == 2 and flag in err and err.count("\n") == 1


def test_a_calibration_of_the_wrong_type_is_a_one_line_cli_error(export_dir, tmp_path):
    (tmp_path / "arm.yaml").write_text("offsets: {base: [0.1]}\n")
    code, err = _run_real(export_dir, tmp_path, "--calibration", str(tmp_path / "arm.yaml"),
                          "--target", "0.2", "0.05", "0.2")
    assert code == 2 and "offsets.base" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------- dry run, emulator child
def test_a_dry_run_sends_nothing_and_leaves_the_stream_on_and_a_real_run_turns_it_back_on():
    printed: list[dict] = []
    with ArmEmulator(EmulatorConfig(latency_s=0.05)) as emu:
        with RoArmDriver.serial(emu.port, dry_run=True, on_dry_run=printed.append) as driver:
            driver.command_joints([0.3, 0.0, 1.5708, 0.0, 0.0, 0.0])
            assert _wait(lambda: driver.stats.frames > 10)
            assert emu.flow_feedback  # the dry run did not switch the arm's feedback off
        assert emu.flow_feedback and (emu.last_command or {}).get("T") in (None, 105)
        assert any(cmd["T"] == 102 for cmd in printed)
        with RoArmDriver.serial(emu.port) as driver:
            assert _wait(lambda: not emu.flow_feedback)  # the driver queries instead while it runs
            driver.command_joints([0.2, 0.0, 1.5708, 0.0, 0.0, 0.0])
        assert _wait(lambda: emu.flow_feedback)  # ... and leaves the arm as it found it


def _children(pid: int) -> list[int]:
    """Child processes of ``pid``, whichever of its threads started them."""
    return [int(c) for task in Path(f"/proc/{pid}/task").glob("*") if (task / "children").exists()
            for c in (task / "children").read_text().split()]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # exited (a zombie waits for whoever adopted it)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads children from /proc (Linux)")
def test_the_emulator_child_does_not_outlive_a_killed_bridge(export_dir, tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "run_real.py"
    proc = subprocess.Popen([sys.executable, str(script), "--policy", str(export_dir), "--robot", "emu",
                             "--target", "0.2", "0.05", "0.2", "--target-time-s", "120", "--log-dir",
                             str(tmp_path / "logs"), "--emu-arg=--latency-s=0.05"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"})  # a pipe, as users have
    emulators: list[int] = []
    try:
        line = proc.stdout.readline()
        assert line.startswith("emulator on"), line
        emulators = _children(proc.pid)
        assert emulators, "the bridge started no emulator child"
        proc.send_signal(signal.SIGKILL)  # no cleanup runs in the bridge
        proc.wait(10)
        assert _wait(lambda: all(_gone(pid) for pid in emulators), timeout=30.0)
    finally:  # this test's own processes only, by pid
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in emulators:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_run_real_on_the_emulator_still_runs_and_logs(export_dir, tmp_path):
    code, err = _run_real(export_dir, tmp_path, "--target", "0.2", "0.05", "0.2", "--target-time-s", "1.0",
                          "--emu-arg=--latency-s=0.05")
    assert code == 0, err
    (run,) = (tmp_path / "logs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["driver"]["commands_refused"] == 0 and summary["max_command_outside_safe_box_rad"] == 0.0


# ---------------------------------------------------------------------------- issue 25, items 13-16: feedback
# that is finite but implausible. What the emulator received (``joint_commands``: every T:102 as it arrived, before
# the firmware's clamps) is the judge: the arm must never be sent a pose outside the box, nor a non-policy move at
# spd 0, and summary.json must count every frame that went out.
from roarm_lab.assets.joint_table import JOINTS, safe_box  # noqa: E402
from roarm_lab.real.bridge import BridgeError, write_report  # noqa: E402
from roarm_lab.real.driver import DriverError  # noqa: E402
from roarm_lab.real.protocol import command_joints  # noqa: E402
from test_real import _bridge  # noqa: E402

HOME = [0.0, 0.0, 1.5708, 0.0, 0.0, 0.0]


def _outside_box(commands) -> float:
    """The farthest any received T:102 reached outside the safe joint box (rad)."""
    lower, upper = safe_box()
    q = np.array([command_joints(c) for c in commands if c["T"] == 102]).reshape(-1, len(JOINTS))
    return float(np.max(np.maximum(q - upper, lower - q), initial=0.0).clip(min=0.0))


def _fault_later(emu, scenario: str) -> threading.Timer:
    """~1 s into the policy phase: base reads 1e6 from then on, or shoulder reads 1.5 once and then nothing."""
    args = (("base", 1e6), {}) if scenario == "absurd_mid_run" else \
        (("shoulder", 1.5), {"frames": 1, "then_silent": True})
    timer = threading.Timer(1.2, emu.report_fault, args=args[0], kwargs=args[1])
    timer.start()
    return timer


def test_13_absurd_feedback_is_a_fault_and_stop_holds_the_last_safe_command_at_bounded_speed():
    with ArmEmulator(EmulatorConfig(latency_s=0.05)) as emu:
        driver = RoArmDriver.serial(emu.port).start()
        try:
            driver.command_joints([0.3] + HOME[1:])
            assert _wait(lambda: abs(driver.feedback().q[0] - 0.3) < 0.02)
            assert len(emu.joint_commands) == 1
            safe = dict(emu.joint_commands[-1])
            before = emu.frames_sent
            emu.report_fault("base", 1e6)
            assert _wait(lambda: emu.frames_sent >= before + 8)  # a run of absurd frames went to the driver
            time.sleep(0.1)
            driver.stop()
            assert _wait(lambda: len(emu.joint_commands) == 2)
            held = emu.joint_commands[-1]
            np.testing.assert_allclose(command_joints(held), command_joints(safe), atol=1e-4)  # the last safe one
            assert held["spd"] > 0 and safe["spd"] > 0  # neither was a policy step: bounded speed, never spd 0
            error = str(driver.error)
            assert "base" in error and "1e+06" in error and "3.142" in error  # joint, what it read, the limit
            assert driver.stats.faults >= 5 and driver.feedback().q[0] == pytest.approx(0.3, abs=0.05)
            with pytest.raises(DriverError, match="base"):
                driver.command_joints(HOME)
        finally:
            driver.close(hold=False)
        assert len(emu.joint_commands) == 2 and _outside_box(emu.joint_commands) < 1e-4  # the wire's resolution


def test_14_one_frame_outside_the_box_then_silence_exits_on_the_last_safe_command(export_dir, tmp_path):
    with ArmEmulator(EmulatorConfig(latency_s=0.05)) as emu:
        driver = RoArmDriver.serial(emu.port).start()
        bridge, said = _bridge(driver, export_dir, tmp_path, target_time_s=1.5, duration_s=2.5)
        timer = _fault_later(emu, "one_bad_frame_then_silence")
        try:
            bridge.run()
        finally:
            timer.cancel()
            driver.close(hold=False)
        received = list(emu.joint_commands)
    assert _outside_box(received) < 1e-4  # the out-of-box reading was never sent back as a pose
    exit_pose, last_safe = received[-1], received[-2]
    np.testing.assert_allclose(command_joints(exit_pose), command_joints(last_safe), atol=1e-4)
    assert exit_pose["spd"] > 0
    assert any("shoulder" in s and "1.5" in s for s in said)  # the bridge said what the arm reported


def test_15_an_absurd_pose_at_start_moves_nothing_and_stops_with_the_error(export_dir, tmp_path):
    with ArmEmulator(EmulatorConfig(latency_s=0.05, fault_at_s=0.0, fault_joint="base", fault_value_rad=1e6)) as emu:
        driver = RoArmDriver.serial(emu.port)
        bridge, _ = _bridge(driver, export_dir, tmp_path, start_timeout_s=1.5, duration_s=1.0)
        try:
            with pytest.raises((DriverError, BridgeError)) as info:
                driver.start()
                bridge.run()
        finally:
            driver.close(hold=False)
        received = list(emu.joint_commands)
    assert received == []  # no safe pose is known: nothing is commanded, least of all the box's corners at spd 0
    assert "base" in str(info.value) and "1e+06" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("scenario", ["absurd_mid_run", "one_bad_frame_then_silence", "absurd_at_start"])
def test_16_summary_counts_every_joint_frame_sent_and_how_far_outside_the_box(export_dir, tmp_path, scenario):
    at_start = scenario == "absurd_at_start"
    with ArmEmulator(EmulatorConfig(latency_s=0.05, fault_at_s=0.0 if at_start else None)) as emu:
        driver = RoArmDriver.serial(emu.port)
        timer = None
        if not at_start:
            driver.start()
            timer = _fault_later(emu, scenario)
        bridge, _ = _bridge(driver, export_dir, tmp_path, target_time_s=1.5, duration_s=2.5, start_timeout_s=1.5)
        summary = None
        try:
            summary = bridge.run()
        except (DriverError, BridgeError):
            pass
        finally:
            if timer is not None:
                timer.cancel()
            write_report(bridge, summary)
            driver.close(hold=False)
        received = list(emu.joint_commands)
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["max_command_outside_safe_box_rad"] == pytest.approx(_outside_box(received), abs=1e-4)
    assert saved["max_command_outside_safe_box_rad"] == 0.0
    assert saved["joint_frames_sent"] == len(received)  # the start move, the policy, the hold: all of them
    assert saved["faults"] >= 1 and (saved["error"] is None) == (scenario == "one_bad_frame_then_silence")


def test_run_real_on_absurd_feedback_exits_with_the_error_and_a_summary_of_nothing_sent(export_dir, tmp_path):
    code, err = _run_real(export_dir, tmp_path, "--target", "0.2", "0.05", "0.2", "--target-time-s", "1.0",
                          "--emu-arg=--latency-s=0.05", "--emu-arg=--fault-at=0", "--emu-arg=--fault-value=-9")
    assert code == 2 and err.startswith("error: the arm reported base -9 rad") and err.count("\n") == 1
    (run,) = (tmp_path / "logs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["error"] in err and summary["joint_frames_sent"] == 0 and summary["faults"] >= 5
    assert summary["steps"] == 0 and summary["max_command_outside_safe_box_rad"] == 0.0
