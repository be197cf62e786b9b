"""Rollouts (``play.py --record-rollouts DIR``) and real-arm runs (``run_real.py``) as one MCAP file of ROS 2 messages.

Why MCAP with ROS 2 types: Foxglove Studio, ``ros2 bag`` and any MCAP reader open the file without this project's
code, so a run can be looked at (joint plots, the hand in 3D against its target) and handed to a ROS user as it is.
The messages are CDR-serialized by ``rosbags`` (pure Python: no ROS install), whose rosbag2 writer writes the
``.mcap`` inside a bag folder; the file alone is a complete MCAP (schemas, channels, index, the rosbag2 metadata
record) and is moved into place atomically.

Topics (``TOPICS``), stamped from zero, one episode after another:

* ``/joint_states`` (``sensor_msgs/msg/JointState``): the joint readings; for rollouts the action joints' servo
  readings the policy saw (its ``joint_pos`` term plus home, ``policy.json`` names the joints) with velocities (the
  ``joint_vel`` term); for a real run all six joints of the joint table as the arm reported them.
* ``/joint_targets`` (``sensor_msgs/msg/JointState``, positions only): the commanded joint targets; rollouts: the
  ``joint_target`` term plus home; a real run: the last T:102 joint command (held through a hold).
* ``/hand_target`` (``geometry_msgs/msg/PointStamped`` in ``base_link``): the target the hand is sent to.
* ``/tf`` (``tf2_msgs/msg/TFMessage``): the hand position as ``base_link`` -> ``tcp`` (position only, identity
  rotation: neither log records the hand's orientation).

Rollout steps are ``step index * control period`` apart. A real run's steps carry their measured time (``t``, from the
start of the control loop), jitter and all. A step whose value is not finite (a real run without feedback) publishes
nothing on that topic.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roarm_lab.assets.joint_table import JOINTS
from roarm_lab.utils.files import UnsafeFileError, read_bounded_text
from roarm_lab.utils.io import atomic_write

INSTALL = 'pip install -e ".[ros2]"'
"""The command that installs the optional packages this module writes with."""
ROS_DISTRO = "ROS2_JAZZY"
"""The ``rosbags`` typestore the message definitions come from (the four types are the same in every ROS 2 release)."""
BASE_FRAME = JOINTS[0].parent
"""``base_link``: the frame the logs' hand and target positions are in."""
HAND_FRAME = "tcp"
"""The measured hand. Not the URDF's ``hand_tcp``: a tree built from the URDF has that child of ``link5`` already,
and a frame with two parents breaks TF."""
JOINT_STATE = "sensor_msgs/msg/JointState"
POINT_STAMPED = "geometry_msgs/msg/PointStamped"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
TOPICS = {"/joint_states": JOINT_STATE, "/joint_targets": JOINT_STATE, "/hand_target": POINT_STAMPED,
          "/tf": TF_MESSAGE}
VELOCITY_TERM, TARGET_TERM = "joint_vel", "joint_target"
"""The policy observation terms (by name, as the reach task calls them) that carry joint velocities and targets."""
EPISODE_FILE = re.compile(r"episode_(\d+)\.npz")
MAX_JSON_BYTES = 1 << 20
NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile)
"""What ``np.load`` raises on a file that is not a readable npz (pickled data is refused, never loaded)."""


class ExportError(ValueError):
    """A source that cannot be exported; the message is one line that names the file and the fix."""


class MissingPackageError(ExportError):
    """The optional ROS 2 packages are not installed."""


@dataclass
class Track:
    """One episode (or one real-arm run) as the topics publish it: one row per control step."""

    stamps_ns: np.ndarray
    """(T,) int64, time of each step from the start of the file."""
    joint_names: list[str]
    position: np.ndarray
    """(T, len(joint_names)) rad."""
    hand: np.ndarray
    """(T, 3) m in ``base_link``."""
    hand_target: np.ndarray
    """(T, 3) m in ``base_link``."""
    velocity: np.ndarray | None = None
    """(T, len(joint_names)) rad/s, or None where the source has none."""
    target_names: list[str] = field(default_factory=list)
    targets: np.ndarray | None = None
    """(T, len(target_names)) rad, or None where the source has none."""


@dataclass
class Recording:
    """What one source folder holds, ready to write: its tracks in time order and facts for the file's metadata."""

    kind: str
    """``rollouts`` or ``real_arm``."""
    tracks: list[Track]
    info: dict[str, Any]


@dataclass
class ExportResult:
    path: Path
    kind: str
    counts: dict[str, int]
    """Messages written per topic."""


# ---------------------------------------------------------------------------- reading the project's logs
def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(read_bounded_text(path, MAX_JSON_BYTES, what))
    except UnsafeFileError as err:
        raise ExportError(str(err)) from None
    except ValueError as err:
        raise ExportError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path} must hold a JSON object")
    return data


def _period(value: Any, path: Path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= 1:
        raise ExportError(f"{path}: {key} {value!r} must be a control period in (0, 1] s")
    return float(value)


def _stamps(seconds: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(seconds, dtype=np.float64) * 1e9).astype(np.int64)


def _rows(array: Any, width: int, name: str, source: Path, steps: int | None = None) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] != width or (steps is not None and len(array) != steps) \
            or not np.issubdtype(array.dtype, np.number):
        want = f"({steps if steps is not None else 'T'}, {width})"
        raise ExportError(f"{source}: '{name}' has shape {array.shape} ({array.dtype}), expected {want} numbers")
    return array.astype(np.float64)


def episode_files(src: Path) -> list[Path]:
    """The rollout folder's ``episode_XXXXX.npz`` files in episode order."""
    found = [(int(m.group(1)), p) for p in src.iterdir() if (m := EPISODE_FILE.fullmatch(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def source_kind(src: str | Path) -> str:
    """``rollouts`` (meta.json + episode_XXXXX.npz) or ``real_arm`` (steps.npz or its parts, and summary.json)."""
    src = Path(src)
    if not src.is_dir():
        raise ExportError(f"no folder at {src}: give a rollout folder (play.py --record-rollouts DIR) or a real-arm "
                          f"run folder (run_real.py --log-dir)")
    if (src / "meta.json").is_file() and episode_files(src):
        return "rollouts"
    if (src / "steps.npz").is_file() or (src / "steps.parts").is_dir():  # summary.json: absent after a crash
        return "real_arm"
    raise ExportError(f"{src} is neither a rollout folder (meta.json and episode_XXXXX.npz from play.py "
                      f"--record-rollouts) nor a real-arm run folder (steps.npz and summary.json from run_real.py)")


def _load_policy_spec(src: Path, policy: str | Path | None) -> dict[str, Any]:
    from roarm_lab.policy.spec import PolicyLoadError, load_spec

    where = Path(policy) if policy is not None else src
    if policy is None and not (src / "policy.json").is_file():
        raise ExportError(f"rollout folder {src} has no policy.json: pass --policy EXPORT_DIR, the export the rollouts "
                          f"were played with (its observation layout says where the joint readings are)")
    try:
        return load_spec(where)[0]
    except PolicyLoadError as err:
        raise ExportError(str(err)) from None


def _term(spec: dict[str, Any], name: str | None, size: int) -> slice | None:
    term = next((t for t in spec["observation"]["terms"] if t["name"] == name), None)
    return slice(term["start"], term["stop"]) if term is not None and term["size"] == size else None


def read_rollouts(src: str | Path, policy: str | Path | None = None) -> Recording:
    """The episodes of a rollout folder, one after another; ``policy``: the export they were played with (default:
    ``policy.json`` in the folder), whose observation layout places the joint readings, velocities and targets."""
    src = Path(src)
    meta_path = src / "meta.json"
    meta = _read_json(meta_path, "rollout meta.json")
    period = _period(meta.get("control_period_s"), meta_path, "control_period_s")
    spec = _load_policy_spec(src, policy)
    if meta.get("task") and meta["task"] != spec["task"]:
        raise ExportError(f"the rollouts are of task {meta['task']!r} and the policy.json of {spec['task']!r}: pass "
                          f"--policy with the export they were played with")
    names = list(spec["action"]["joint_names"])
    home = np.array([spec["default_joint_pos"][n] for n in names], dtype=np.float64)
    size = len(names)
    measured = _term(spec, spec["observation"].get("measured_joint_pos_term") or "joint_pos", size)
    if measured is None:
        raise ExportError("the policy.json names no observation term with the action joints' readings "
                          "(measured_joint_pos_term): export the policy again with scripts/play.py")
    velocity, target = _term(spec, VELOCITY_TERM, size), _term(spec, TARGET_TERM, size)
    obs_size = int(spec["observation"]["size"])
    tracks, episodes, start = [], [], 0
    for path in episode_files(src):
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in ("obs", "ee_pos", "target_pos")}
        except KeyError as err:
            raise ExportError(f"{path} has no {err} array: not an episode written by play.py "
                              f"--record-rollouts") from None
        except NPZ_ERRORS as err:
            raise ExportError(f"{path} cannot be read as npz ({err})") from None
        obs = _rows(arrays["obs"], obs_size, "obs", path)
        steps = len(obs)
        hand = _rows(arrays["ee_pos"], 3, "ee_pos", path, steps)
        goal = _rows(arrays["target_pos"], 3, "target_pos", path, steps)
        stamps = _stamps((start + np.arange(steps)) * period)
        tracks.append(Track(stamps_ns=stamps, joint_names=names, position=obs[:, measured] + home, hand=hand,
                            hand_target=goal, velocity=None if velocity is None else obs[:, velocity],
                            target_names=names if target is not None else [],
                            targets=None if target is None else obs[:, target] + home))
        episodes.append({"file": path.name, "start_ns": int(stamps[0]) if steps else None, "steps": steps})
        start += steps
    info = {"source": "rollouts", "task": spec["task"], "control_period_s": period, "episodes": episodes}
    return Recording("rollouts", tracks, info)


def read_real_run(src: str | Path) -> Recording:
    """A real-arm run folder as one track: every joint of the joint table, stamped with the loop's measured time.

    A run that crashed has its step log's part files and no summary.json; the loop's times are enough then."""
    from roarm_lab.real.steplog import load_step_log

    src = Path(src)
    summary_path = src / "summary.json"
    summary = _read_json(summary_path, "run summary.json") if summary_path.exists() else {}
    period = _period(summary["period_s"], summary_path, "period_s") if "period_s" in summary else None
    try:
        data = load_step_log(src / "steps.npz")
    except FileNotFoundError as err:
        raise ExportError(str(err)) from None
    except NPZ_ERRORS as err:  # a KeyError here: part files with different fields
        raise ExportError(f"{src / 'steps.npz'} (or its part files) cannot be read as a step log ({err!r})") from None
    missing = [k for k in ("q", "hand", "target") if k not in data]
    if missing:
        raise ExportError(f"{src / 'steps.npz'} has no {missing}: not a step log written by run_real.py")
    names = [j.name for j in JOINTS]
    q = _rows(data["q"], len(names), "q", src / "steps.npz")
    steps = len(q)
    t = data.get("t")
    if t is not None and np.shape(t) == (steps,) and np.issubdtype(t.dtype, np.number) and np.all(np.isfinite(t)) \
            and np.all(t >= 0) and np.all(np.diff(t) >= 0):
        seconds = np.asarray(t, dtype=np.float64)  # from the start of the control loop: 0 at its first step
    elif period is not None:  # no usable loop times: the schedule the loop kept
        seconds = np.arange(steps) * period
    else:
        raise ExportError(f"{src / 'steps.npz'} has no usable step times ('t') and {summary_path} gives no period_s")
    command = data.get("command")
    track = Track(stamps_ns=_stamps(seconds), joint_names=names, position=q,
                  hand=_rows(data["hand"], 3, "hand", src / "steps.npz", steps),
                  hand_target=_rows(data["target"], 3, "target", src / "steps.npz", steps),
                  target_names=names if command is not None else [],
                  targets=None if command is None else _rows(command, len(names), "command", src / "steps.npz", steps))
    info = {"source": "real_arm", "control_period_s": period, "steps": steps,
            "run": {k: summary.get(k) for k in ("targets", "reached", "error") if k in summary}}
    return Recording("real_arm", [track], info)


def read_source(src: str | Path, policy: str | Path | None = None) -> Recording:
    """Either kind of folder, told apart by its files."""
    kind = source_kind(src)
    if kind == "rollouts":
        return read_rollouts(src, policy)
    if policy is not None:
        raise ExportError(f"{src} is a real-arm run: its log has every joint by name, leave --policy out")
    return read_real_run(src)


# ---------------------------------------------------------------------------- writing ROS 2 messages
def _ros_packages() -> dict[str, Any]:
    """rosbags' writer and typestore, or an error that names the install command."""
    try:
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore
    except ImportError as err:
        raise MissingPackageError(f"the MCAP export needs the optional ROS 2 packages ({err.name or err} is not "
                                  f"installed): {INSTALL}") from None
    return {"Writer": Writer, "StoragePlugin": StoragePlugin, "CompressionMode": CompressionMode,
            "CompressionFormat": CompressionFormat, "typestore": get_typestore(getattr(Stores, ROS_DISTRO))}


class _Messages:
    """Builds the four message types from rows, with the typestore's classes (CDR-serialized by the same store)."""

    def __init__(self, typestore: Any):
        self.store = typestore
        types = typestore.types
        self.Time, self.Header = types["builtin_interfaces/msg/Time"], types["std_msgs/msg/Header"]
        self.JointState, self.Point = types[JOINT_STATE], types["geometry_msgs/msg/Point"]
        self.PointStamped, self.TFMessage = types[POINT_STAMPED], types[TF_MESSAGE]
        self.TransformStamped = types["geometry_msgs/msg/TransformStamped"]
        self.Transform = types["geometry_msgs/msg/Transform"]
        self.Vector3, self.Quaternion = types["geometry_msgs/msg/Vector3"], types["geometry_msgs/msg/Quaternion"]
        self.empty = np.zeros(0, dtype=np.float64)

    def header(self, stamp_ns: int, frame: str) -> Any:
        return self.Header(stamp=self.Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000)),
                           frame_id=frame)

    def joint_state(self, stamp_ns: int, names: list[str], position: np.ndarray, velocity: np.ndarray | None) -> bytes:
        msg = self.JointState(header=self.header(stamp_ns, ""), name=names, position=np.asarray(position, np.float64),
                              velocity=self.empty if velocity is None else np.asarray(velocity, np.float64),
                              effort=self.empty)
        return bytes(self.store.serialize_cdr(msg, JOINT_STATE))

    def point(self, stamp_ns: int, xyz: np.ndarray) -> bytes:
        msg = self.PointStamped(header=self.header(stamp_ns, BASE_FRAME),
                                point=self.Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])))
        return bytes(self.store.serialize_cdr(msg, POINT_STAMPED))

    def hand_tf(self, stamp_ns: int, xyz: np.ndarray) -> bytes:
        transform = self.Transform(translation=self.Vector3(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])),
                                   rotation=self.Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))
        msg = self.TFMessage(transforms=[self.TransformStamped(header=self.header(stamp_ns, BASE_FRAME),
                                                               child_frame_id=HAND_FRAME, transform=transform)])
        return bytes(self.store.serialize_cdr(msg, TF_MESSAGE))


def _finite(rows: np.ndarray | None) -> np.ndarray | None:
    return None if rows is None else np.all(np.isfinite(rows), axis=1)


def write_mcap(recording: Recording, out: str | Path) -> dict[str, int]:
    """Write ``recording`` to ``out`` (atomically); return the messages written per topic."""
    ros = _ros_packages()
    build = _Messages(ros["typestore"])
    has_targets = any(track.targets is not None for track in recording.tracks)
    topics = [t for t in TOPICS if t != "/joint_targets" or has_targets]
    counts = dict.fromkeys(topics, 0)
    out = Path(out)

    def write(tmp: str) -> None:
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=Path(tmp).parent) as folder:
            bag = Path(folder) / "bag"  # rosbags writes a bag folder: bag/metadata.yaml and bag/bag.mcap
            writer = ros["Writer"](bag, version=9, storage_plugin=ros["StoragePlugin"].MCAP)
            writer.set_compression(ros["CompressionMode"].STORAGE, ros["CompressionFormat"].ZSTD)
            for key, value in recording.info.items():
                writer.set_custom_data(f"roarm_lab.{key}", value if isinstance(value, str) else json.dumps(value))
            with writer:
                channels = {t: writer.add_connection(t, TOPICS[t], typestore=ros["typestore"]) for t in topics}

                def put(topic: str, stamp: int, data: bytes) -> None:
                    writer.write(channels[topic], stamp, data)
                    counts[topic] += 1

                for track in recording.tracks:
                    ok_q, ok_v = _finite(track.position), _finite(track.velocity)
                    ok_cmd, ok_hand, ok_goal = _finite(track.targets), _finite(track.hand), _finite(track.hand_target)
                    for i, stamp in enumerate(int(s) for s in track.stamps_ns):
                        if ok_q[i]:
                            velocity = track.velocity[i] if ok_v is not None and ok_v[i] else None
                            put("/joint_states", stamp,
                                build.joint_state(stamp, track.joint_names, track.position[i], velocity))
                        if ok_cmd is not None and ok_cmd[i]:
                            put("/joint_targets", stamp,
                                build.joint_state(stamp, track.target_names, track.targets[i], None))
                        if ok_goal[i]:
                            put("/hand_target", stamp, build.point(stamp, track.hand_target[i]))
                        if ok_hand[i]:
                            put("/tf", stamp, build.hand_tf(stamp, track.hand[i]))
            os.replace(bag / "bag.mcap", tmp)

    atomic_write(out, write)
    return counts


def export(src: str | Path, out: str | Path, policy: str | Path | None = None) -> ExportResult:
    """Read a rollout folder or a real-arm run folder and write it to ``out`` as MCAP."""
    out = Path(out)
    if out.suffix != ".mcap":
        raise ExportError(f"the output {out} must end in .mcap (Foxglove and ros2 bag tell the format by it)")
    if out.is_dir():
        raise ExportError(f"{out} is a folder: give a file name ending in .mcap")
    _ros_packages()  # before reading a long run: say what to install first
    recording = read_source(src, policy)
    return ExportResult(out, recording.kind, write_mcap(recording, out))
