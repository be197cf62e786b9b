"""The firmware emulator over a real pseudo-terminal (pyserial) and real HTTP (urllib): protocol, motion, faults."""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import serial

from roarm_lab.assets.joint_table import NAMED_POSES
from roarm_lab.real.emulator import ArmEmulator, EmulatorConfig, EmulatorProcess
from roarm_lab.real.protocol import (FrameError, encode, flow_feedback_command, joints_command, led_command,
                                     parse_feedback, query_command, torque_command)

HOME = np.array(NAMED_POSES["home"])
OBSERVE = np.array(NAMED_POSES["observe"])


@pytest.fixture
def make_emu(tmp_path):
    emus: list[ArmEmulator] = []
    ports: list[serial.Serial] = []

    def factory(**kwargs) -> tuple[ArmEmulator, serial.Serial]:
        kwargs.setdefault("link", str(tmp_path / f"ttyRoArm{len(emus)}"))
        emu = ArmEmulator(EmulatorConfig(**kwargs)).start()
        emus.append(emu)
        ser = open_port(emu.port)
        ports.append(ser)
        return emu, ser

    yield factory
    for ser in ports:
        ser.close()
    for emu in emus:
        emu.stop()


def open_port(path: str) -> serial.Serial:
    """Open like the real arm: RTS and DTR low before opening (or the ESP32 resets)."""
    ser = serial.Serial()
    ser.port, ser.baudrate, ser.timeout = path, 115200, 0.05
    ser.rts, ser.dtr = False, False
    ser.open()  # pyserial's open() also discards input queued while nobody had the port open
    return ser


def read_lines(ser: serial.Serial, seconds: float) -> list[bytes]:
    lines, end = [], time.monotonic() + seconds
    pending = b""
    while time.monotonic() < end:
        pending += ser.read(ser.in_waiting or 1)
        *done, pending = pending.split(b"\n")
        lines += [line for line in done if line]
    return lines


def latest_feedback(ser: serial.Serial, seconds: float = 0.25):
    ser.reset_input_buffer()
    frames = []
    for line in read_lines(ser, seconds):
        try:
            frames.append(parse_feedback(line, time.monotonic()))
        except FrameError:
            pass
    assert frames, "no valid feedback frame"
    return frames[-1]


def wait_for(predicate, timeout_s: float, period_s: float = 0.01) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout_s``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"condition not met within {timeout_s} s")
        time.sleep(period_s)
    return time.monotonic() - start


def http_get(url: str, command: str, raw: bool = False) -> tuple[int, bytes]:
    """GET /js?json=<command>; ``raw``: GET ``url`` as given."""
    full = url if raw else f"{url}/js?json={urllib.parse.quote(command)}"
    try:
        with urllib.request.urlopen(full, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_flow_feedback_streams_home_at_about_23_hz(make_emu):
    emu, ser = make_emu(latency_s=0.05)
    assert os.path.islink(emu.port) and os.path.realpath(emu.port).startswith("/dev/pts/")
    lines = read_lines(ser, 1.0)
    frames = [parse_feedback(line, time.monotonic()) for line in lines]
    assert 18 <= len(frames) <= 28, len(frames)
    assert all(fb.raw["T"] == 1051 for fb in frames)
    np.testing.assert_allclose(frames[-1].q, HOME, atol=0.05)
    np.testing.assert_allclose(frames[-1].tcp_mm, emu.hand_position_mm(), atol=2.0)
    assert frames[-1].loads[1] < 0  # the shoulder servo holds the arm against gravity


def test_flow_off_silences_stream_and_query_replies_once(make_emu):
    emu, ser = make_emu(latency_s=0.05)
    ser.write(encode(flow_feedback_command(False)))
    wait_for(lambda: not emu.flow_feedback, 1.0)
    time.sleep(0.1)
    ser.reset_input_buffer()
    assert read_lines(ser, 0.3) == []
    before = emu.commands_received
    ser.write(encode(query_command()))
    replies = read_lines(ser, 0.3)
    assert len(replies) == 1
    np.testing.assert_allclose(parse_feedback(replies[0], time.monotonic()).q, HOME, atol=0.05)
    assert emu.commands_received == before + 1
    assert emu.last_command == {"T": 605, "cmd": 0}  # queries do not hide the last real command
    # LED stored; garbage and unknown commands ignored, never echoed
    ser.write(encode(led_command(77)) + b"not json\n" + b'{"T":4242}\n')
    assert read_lines(ser, 0.2) == []
    assert emu.led == 77 and emu.ignored_lines == 2


def test_joint_command_moves_after_latency_at_limited_speed(make_emu):
    emu, ser = make_emu(speed_rad_s=2.0)  # default latency 0.2 s
    start = emu.true_joint_pos()
    target = np.array([1.5, 0.3, 1.2, 0.4, 0.3, 0.5])
    ser.write(encode(joints_command(target)))
    t0 = time.monotonic()
    samples = []
    while time.monotonic() - t0 < 2.5:
        samples.append((time.monotonic() - t0, emu.true_joint_pos()))
        time.sleep(0.01)
    times = np.array([t for t, _ in samples])
    q = np.array([s for _, s in samples])
    early = times <= 0.1
    assert np.abs(q[early] - start).max() < 0.01  # still inside the latency window
    assert np.abs(q[times >= 0.35][0] - start).max() > 0.05  # ... but the motion did start after it
    np.testing.assert_allclose(q[-1], target, atol=0.03)
    # the base needs 1.5 rad / 2 rad/s = 0.75 s after the latency; speed over 50 ms windows stays near the limit
    speed = np.abs(np.diff(q[::5], axis=0)) / np.diff(times[::5])[:, None]
    assert speed.max() < 2.0 * 1.25, speed.max()
    arrival = times[np.argmax(np.abs(q[:, 0] - target[0]) < 0.03)]
    assert 0.85 < arrival < 1.3, arrival


def test_gripper_reports_hand_as_pi_minus_q(make_emu):
    emu, ser = make_emu(latency_s=0.05)
    cmd = joints_command([0.0, 0.0, math.pi / 2, 0.0, 0.0, 1.0])
    assert cmd["hand"] == pytest.approx(math.pi - 1.0, abs=1e-4)
    ser.write(encode(cmd))
    wait_for(lambda: abs(emu.true_joint_pos()[5] - 1.0) < 0.02, 3.0)
    fb = latest_feedback(ser)
    assert fb.raw["g"] == pytest.approx(math.pi - 1.0, abs=0.05)
    assert fb.q[5] == pytest.approx(1.0, abs=0.05)


def test_torque_off_is_limp_and_torque_on_holds_where_moved(make_emu):
    emu, ser = make_emu(latency_s=0.05)
    ser.write(encode(torque_command(False)))
    wait_for(lambda: not emu.torque_enabled, 1.0)
    emu.move_by_hand(OBSERVE)
    fb = latest_feedback(ser)
    np.testing.assert_allclose(fb.q, OBSERVE, atol=0.05)
    assert np.all(fb.loads == 0)  # limp: the servos push nothing
    ser.write(encode(joints_command(HOME)))  # position writes do nothing without torque
    time.sleep(0.3)
    np.testing.assert_allclose(emu.true_joint_pos(), OBSERVE, atol=0.05)
    ser.write(encode(torque_command(True)))
    wait_for(lambda: emu.torque_enabled, 1.0)
    t0 = time.monotonic()
    drift = 0.0
    while time.monotonic() - t0 < 0.5:
        drift = max(drift, float(np.abs(emu.true_joint_pos() - OBSERVE).max()))
        time.sleep(0.01)
    assert drift < 0.05, drift
    with pytest.raises(RuntimeError, match="torque off"):
        emu.move_by_hand(HOME)


def test_http_query_motion_and_bad_requests(make_emu):
    emu, _ = make_emu(latency_s=0.05, http_port=0)
    assert emu.http_url is not None and emu.http_url.startswith("http://127.0.0.1:")
    status, body = http_get(emu.http_url, json.dumps(query_command()))
    assert status == 200
    np.testing.assert_allclose(parse_feedback(body, time.monotonic()).q, HOME, atol=0.05)
    target = np.array([-0.5, 0.2, 1.4, 0.2, 0.0, 0.0])
    status, body = http_get(emu.http_url, json.dumps(joints_command(target)))
    assert (status, body) == (200, b"")
    wait_for(lambda: np.abs(emu.true_joint_pos() - target).max() < 0.03, 3.0)
    for bad in ('{"T":102,"base":', '[1,2]', '{"T":102,"base":"left"}'):
        status, body = http_get(emu.http_url, bad)
        assert status == 400 and body.count(b"\n") == 1 and b"Traceback" not in body, (bad, body)
    status, body = http_get(emu.http_url + "/js?", "", raw=True)  # no json= at all
    assert status == 400 and b"json=" in body


def test_fault_injection_garbage_torn_unpowered_frames(make_emu):
    emu, ser = make_emu(latency_s=0.05, garbage_rate=0.3, unpowered_rate=0.2, seed=0)
    kinds: dict[str, int] = {}
    for line in read_lines(ser, 1.5):
        try:
            parse_feedback(line, time.monotonic())
            kinds["ok"] = kinds.get("ok", 0) + 1
        except FrameError as err:
            kinds[err.kind] = kinds.get(err.kind, 0) + 1
    assert {"garbage", "torn", "unpowered", "ok"} <= set(kinds), kinds
    assert kinds["ok"] >= 8, kinds


def test_pull_cable_errors_the_port_then_the_link_comes_back(make_emu):
    emu, ser = make_emu(latency_s=0.05)
    assert read_lines(ser, 0.2)
    emu.pull_cable(0.5)
    t0 = time.monotonic()
    with pytest.raises(serial.SerialException):
        while time.monotonic() - t0 < 1.0:
            ser.read(256)
    assert time.monotonic() - t0 < 1.0
    assert not os.path.lexists(emu.port)
    back = wait_for(lambda: os.path.exists(emu.port), 2.0)
    assert 0.3 < time.monotonic() - t0 < 1.0, back
    ser.close()
    ser2 = open_port(emu.port)
    try:
        frames = [parse_feedback(line, time.monotonic()) for line in read_lines(ser2, 0.4)]
        assert len(frames) >= 5
        np.testing.assert_allclose(frames[-1].q, HOME, atol=0.05)
    finally:
        ser2.close()


def test_calibration_offset_shifts_reported_joints(make_emu):
    offset = (0.1, -0.05, 0.02, 0.03, -0.1, 0.05)
    emu, ser = make_emu(latency_s=0.05, calibration_offset=offset)
    time.sleep(0.3)  # let the arm settle at home
    fb = latest_feedback(ser)
    np.testing.assert_allclose(fb.q, emu.true_joint_pos() - np.array(offset), atol=2e-3)
    assert fb.raw["g"] == pytest.approx(math.pi - (emu.true_joint_pos()[5] - offset[5]), abs=2e-3)
    # commands are in the firmware's (offset) angles: the arm settles where the feedback reads the target
    target = np.array([0.4, 0.0, 1.5, 0.1, 0.2, 0.3])
    ser.write(encode(joints_command(target)))
    wait_for(lambda: np.abs(emu.true_joint_pos() - np.array(offset) - target).max() < 0.03, 3.0)


def test_emergency_stop_blocks_then_clears(make_emu):
    emu, ser = make_emu(latency_s=0.05, estop_block_s=0.4)
    ser.write(b'{"T":0}\n')
    wait_for(lambda: emu.estopped and not emu.torque_enabled, 1.0)
    time.sleep(0.05)
    ser.reset_input_buffer()
    ser.write(b'{"T":999}\n')  # the firmware sleeps: even this is lost
    assert read_lines(ser, 0.2) == []  # no stream while blocked
    assert emu.estopped
    time.sleep(0.25)
    assert read_lines(ser, 0.2)  # stream resumes after the block
    ser.write(encode(torque_command(True)))  # refused until T:999
    time.sleep(0.1)
    assert not emu.torque_enabled
    ser.write(b'{"T":999}\n' + encode(torque_command(True)))
    wait_for(lambda: emu.torque_enabled and not emu.estopped, 1.0)


def test_cli_process_ready_line_stream_and_clean_exit(tmp_path):
    link = str(tmp_path / "ttyCli")
    with EmulatorProcess("--link", link, "--http-port", "0", "--latency-s", "0.05") as proc:
        assert proc.port == link and proc.http_url is not None
        ser = open_port(proc.port)
        try:
            assert len(read_lines(ser, 0.5)) >= 8
        finally:
            ser.close()
        status, body = http_get(proc.http_url, '{"T":105}')
        assert status == 200 and json.loads(body)["T"] == 1051
        code = proc.stop()
    assert code == 0
    assert not os.path.lexists(link)


def test_feedback_fault_reports_an_implausible_value_then_falls_silent_but_obeys(make_emu):
    emu, ser = make_emu(latency_s=0.05)
    assert read_lines(ser, 0.2)
    emu.report_fault("shoulder", 1.5, frames=2, then_silent=True)
    lines = read_lines(ser, 0.5)
    frames = [parse_feedback(line, time.monotonic()) for line in lines
              if line.startswith(b"{")]  # not the tail of a frame the first read stopped in
    assert len(frames) == 2 and all(fb.raw["s"] == 1.5 for fb in frames)  # finite, well formed, impossible
    np.testing.assert_allclose(np.delete(frames[-1].q, 1), np.delete(HOME, 1), atol=0.05)  # the rest reads true
    ser.write(encode(query_command()))
    assert read_lines(ser, 0.3) == []  # silent: not even a query reply
    ser.write(encode(joints_command([0.4, 0.0, 1.5708, 0.0, 0.0, 0.0], spd=652)))  # ... but it still obeys
    wait_for(lambda: abs(emu.true_joint_pos()[0] - 0.4) < 0.03, 3.0)
    assert emu.joint_commands[-1]["spd"] == 652 and emu.joint_commands[-1]["base"] == 0.4
    with pytest.raises(ValueError, match="unknown joint 'nose'"):
        emu.report_fault("nose", 1.0)
    with pytest.raises(ValueError, match="finite"):
        emu.report_fault("base", math.nan)


def test_cli_fault_flags_schedule_the_fault_and_bad_ones_are_one_line_errors(tmp_path, capsys):
    from roarm_lab.real.emulator import main

    with EmulatorProcess("--latency-s", "0.05", "--fault-at", "0", "--fault-joint", "wrist",
                         "--fault-value", "7.5") as proc:
        ser = open_port(proc.port)
        try:
            frames = [parse_feedback(line, time.monotonic()) for line in read_lines(ser, 0.4)]
        finally:
            ser.close()
    assert frames and all(fb.raw["t"] == 7.5 for fb in frames)
    assert main(["--fault-joint", "nose"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: fault joint: unknown joint 'nose'") and err.count("\n") == 1
