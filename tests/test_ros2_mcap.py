"""The MCAP export with ROS 2 types, read back by a reader that shares no code with the writer.

Rollouts come from the project's own evaluation (an exported untrained policy, recorded as play.py records them);
a real-arm run folder comes from the bridge driving the firmware emulator through ``run_real.py``'s CLI. The export
writes with ``rosbags`` (its own MCAP writer and CDR serializer); the test reads with the ``mcap`` package and
``mcap-ros2-support``'s decoder, which parses the schemas stored in the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rosbags", reason='the optional ROS 2 packages are not installed: pip install -e ".[ros2]"')
mcap_reader = pytest.importorskip("mcap.reader", reason='mcap is not installed: pip install -e ".[ros2]"')
mcap_ros2_decoder = pytest.importorskip("mcap_ros2.decoder",
                                        reason='mcap-ros2-support is not installed: pip install -e ".[ros2]"')

from roarm_lab.assets.joint_table import ARM_JOINTS, JOINTS  # noqa: E402
from roarm_lab.ros2.cli import main  # noqa: E402

from conftest import TASK, reach_cfg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TYPES = {"/joint_states": "sensor_msgs/msg/JointState", "/joint_targets": "sensor_msgs/msg/JointState",
         "/hand_target": "geometry_msgs/msg/PointStamped", "/tf": "tf2_msgs/msg/TFMessage"}


def read_mcap(path: Path) -> tuple[Any, dict[str, list[tuple[int, Any]]], dict[str, dict[str, str]]]:
    """(summary, {topic: [(log_time_ns, decoded message)]} in log-time order, {metadata name: fields})."""
    with open(path, "rb") as handle:
        reader = mcap_reader.make_reader(handle, decoder_factories=[mcap_ros2_decoder.DecoderFactory()])
        header = reader.get_header()
        assert header.profile == "ros2"
        summary = reader.get_summary()
        messages: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        for _, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True):
            messages[channel.topic].append((message.log_time, decoded))
        metadata = {record.name: dict(record.metadata) for record in reader.iter_metadata()}
    return summary, messages, metadata


def stamp_ns(msg: Any) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def check_channels(summary: Any, counts: dict[str, int]) -> None:
    """Every topic with its ROS 2 type, CDR-encoded, its schema a ros2msg definition, and its message count."""
    channels = {c.topic: c for c in summary.channels.values()}
    assert set(channels) == set(counts)
    for topic, channel in channels.items():
        schema = summary.schemas[channel.schema_id]
        assert (schema.name, schema.encoding, channel.message_encoding) == (TYPES[topic], "ros2msg", "cdr")
        assert summary.statistics.channel_message_counts[channel.id] == counts[topic], topic


@pytest.fixture(scope="module")
def rollouts(export_dir, tmp_path_factory):
    """Two held-out episodes of the exported (untrained) ONNX policy on two environments, recorded as play.py does."""
    import torch

    from roarm_lab.policy import LoadedPolicy
    from roarm_lab.registry import make_env
    from roarm_lab.rl.evaluate import evaluate

    torch.set_num_threads(1)
    cfg = reach_cfg(num_envs=2, seed=3)
    cfg.evaluation_mode(randomize=False)
    env = make_env(TASK, cfg)
    out = tmp_path_factory.mktemp("rollouts") / "rollouts"
    try:
        evaluate(env, LoadedPolicy.load(export_dir, "onnx").as_torch(), 2, record_dir=out, task=TASK,
                 show_progress=False)
    finally:
        env.close()
    return out


def test_rollouts_export_to_mcap_with_ros2_types(rollouts, export_dir, tmp_path, capsys):
    out = tmp_path / "rollouts.mcap"
    assert main(["export", str(rollouts), str(out), "--policy", str(export_dir)]) == 0
    assert f"wrote {out} (rollouts)" in capsys.readouterr().out

    spec = json.loads((export_dir / "policy.json").read_text())
    meta = json.loads((rollouts / "meta.json").read_text())
    period_ns = meta["control_period_s"] * 1e9
    names = spec["action"]["joint_names"]
    assert names == [j.name for j in ARM_JOINTS]  # the joint table's arm joints, as the export names them
    home = np.array([spec["default_joint_pos"][n] for n in names])
    terms = {t["name"]: slice(t["start"], t["stop"]) for t in spec["observation"]["terms"]}
    episodes = []
    for path in sorted(rollouts.glob("episode_*.npz")):
        with np.load(path, allow_pickle=False) as data:
            episodes.append({k: data[k] for k in ("obs", "ee_pos", "target_pos")})
    assert len(episodes) == 2
    steps = len(episodes[0]["obs"])
    assert steps > 10 and all(len(e["obs"]) == steps for e in episodes)

    summary, messages, metadata = read_mcap(out)
    check_channels(summary, dict.fromkeys(TYPES, 2 * steps))
    info = metadata["rosbag2"]["serialized_metadata"]
    assert "roarm_lab.episodes" in info and "episode_00001.npz" in info and TASK in info

    for topic in TYPES:  # log time = header stamp = (episode * steps + step) * control period, episodes in a row
        stamps = [t for t, _ in messages[topic]]
        expected = np.round(np.arange(2 * steps) * period_ns).astype(np.int64)
        np.testing.assert_array_equal(stamps, expected)
        headers = [stamp_ns(m.transforms[0]) if topic == "/tf" else stamp_ns(m) for _, m in messages[topic]]
        np.testing.assert_array_equal(headers, expected)

    states = [m for _, m in messages["/joint_states"]]
    targets = [m for _, m in messages["/joint_targets"]]
    goals = [m for _, m in messages["/hand_target"]]
    tfs = [m for _, m in messages["/tf"]]
    assert all(list(m.name) == names for m in states + targets)
    assert all(len(m.effort) == 0 for m in states) and all(len(m.velocity) == 0 for m in targets)
    for k, episode in enumerate(episodes):
        rows = slice(k * steps, (k + 1) * steps)
        obs = episode["obs"].astype(np.float64)
        np.testing.assert_allclose([m.position for m in states[rows]], obs[:, terms["joint_pos"]] + home,
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose([m.velocity for m in states[rows]], obs[:, terms["joint_vel"]], rtol=0, atol=1e-12)
        np.testing.assert_allclose([m.position for m in targets[rows]], obs[:, terms["joint_target"]] + home,
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose([[m.point.x, m.point.y, m.point.z] for m in goals[rows]], episode["target_pos"],
                                   rtol=0, atol=1e-12)
        translations = [m.transforms[0].transform.translation for m in tfs[rows]]
        np.testing.assert_allclose([[v.x, v.y, v.z] for v in translations], episode["ee_pos"], rtol=0, atol=1e-12)
    assert all(m.header.frame_id == "base_link" for m in goals)
    for m in tfs:
        (tf,) = m.transforms
        assert (tf.header.frame_id, tf.child_frame_id) == ("base_link", "tcp")
        rotation = tf.transform.rotation
        assert (rotation.x, rotation.y, rotation.z, rotation.w) == (0.0, 0.0, 0.0, 1.0)


def test_a_real_arm_run_on_the_emulator_exports_every_joint_with_its_measured_time(export_dir, tmp_path, capsys):
    from roarm_lab.real.cli import main as run_real

    logs = tmp_path / "logs"
    assert run_real(["--policy", str(export_dir), "--robot", "emu", "--log-dir", str(logs), "--emu-arg=--latency-s=0.05",
                     "--target", "0.2", "0.05", "0.2", "--target-time-s", "1.0"]) == 0
    (run,) = logs.iterdir()
    capsys.readouterr()
    out = tmp_path / "real.mcap"
    assert subprocess.run([sys.executable, str(ROOT / "scripts" / "export_mcap.py"), str(run), str(out)],
                          capture_output=True, text=True, timeout=120).returncode == 0

    with np.load(run / "steps.npz", allow_pickle=False) as data:
        steps = {k: data[k] for k in ("t", "q", "hand", "target", "command")}
    assert len(steps["t"]) >= 20
    has_q = np.isfinite(steps["q"]).all(axis=1)
    has_hand = np.isfinite(steps["hand"]).all(axis=1)
    summary, messages, _ = read_mcap(out)
    check_channels(summary, {"/joint_states": int(has_q.sum()), "/joint_targets": len(steps["t"]),
                             "/hand_target": len(steps["t"]), "/tf": int(has_hand.sum())})
    stamps = np.round(steps["t"] * 1e9).astype(np.int64)
    states = [m for _, m in messages["/joint_states"]]
    assert all(list(m.name) == [j.name for j in JOINTS] for m in states)  # all six, the gripper included
    np.testing.assert_array_equal([stamp_ns(m) for m in states], stamps[has_q])
    np.testing.assert_allclose([m.position for m in states], steps["q"][has_q], rtol=0, atol=1e-12)
    assert all(len(m.velocity) == 0 for m in states)  # the arm reports positions only
    np.testing.assert_allclose([m.position for _, m in messages["/joint_targets"]], steps["command"], rtol=0, atol=1e-12)
    np.testing.assert_allclose([[m.point.x, m.point.y, m.point.z] for _, m in messages["/hand_target"]],
                               steps["target"], rtol=0, atol=1e-12)
    hand = [m.transforms[0].transform.translation for _, m in messages["/tf"]]
    np.testing.assert_allclose([[v.x, v.y, v.z] for v in hand], steps["hand"][has_hand], rtol=0, atol=1e-12)
    np.testing.assert_array_equal([t for t, _ in messages["/tf"]], stamps[has_hand])

    # a run that crashed: the step log's part files (as StepLog checkpoints them), no steps.npz, no summary.json
    crashed = tmp_path / "crashed"
    (crashed / "steps.parts").mkdir(parents=True)
    with np.load(run / "steps.npz", allow_pickle=False) as data:
        full = {k: data[k] for k in data.files}
    half = len(steps["t"]) // 2
    for index, rows in enumerate((slice(0, half), slice(half, None))):
        np.savez(crashed / "steps.parts" / f"{index:05d}.npz", **{k: v[rows] for k, v in full.items()})
    assert main(["export", str(crashed), str(tmp_path / "crashed.mcap")]) == 0
    summary, again, _ = read_mcap(tmp_path / "crashed.mcap")
    assert summary.statistics.message_count == sum(len(v) for v in messages.values())
    np.testing.assert_array_equal([m.position for _, m in again["/joint_states"]], [m.position for m in states])


def test_bad_sources_are_one_line_errors(rollouts, export_dir, tmp_path, capsys):
    def refused(args: list[str], words: str) -> None:
        assert main(["export", *args]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err

    (tmp_path / "empty").mkdir()
    refused([str(tmp_path / "empty"), str(tmp_path / "a.mcap")], "neither a rollout folder")
    refused([str(tmp_path / "missing"), str(tmp_path / "a.mcap")], "no folder at")
    refused([str(rollouts), str(tmp_path / "a.mcap")], "pass --policy EXPORT_DIR")
    refused([str(rollouts), str(tmp_path / "a.bag"), "--policy", str(export_dir)], "must end in .mcap")
    refused([str(rollouts), str(tmp_path / "a.mcap"), "--policy", str(tmp_path / "empty")], "no policy.json")
    assert not (tmp_path / "a.mcap").exists() and not list(tmp_path.glob(".a.mcap*"))  # nothing half-written


def test_without_the_optional_packages_the_error_names_the_install_command(rollouts, export_dir, tmp_path):
    """A Python in which rosbags cannot be imported (``sys.modules[name] = None`` is how Python marks a module
    as unimportable): the export refuses in one line that says what to install."""
    code = ("import sys; sys.modules['rosbags'] = None; from roarm_lab.ros2.cli import main; "
            f"sys.exit(main(['export', {str(rollouts)!r}, {str(tmp_path / 'x.mcap')!r}, '--policy', {str(export_dir)!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert 'pip install -e ".[ros2]"' in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "x.mcap").exists()
