"""What the fused forms share: the bound term, its call-time slots, the buffers terms read, and shared arithmetic.

Every helper returns numpy views of the live torch buffers (``view``): a kernel reads and writes what the readable
term does, in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numba
import numpy as np

from roarm_lab.embedded.managers.fused import view
from roarm_lab.mdp import rewards

ONE = np.float32(1.0)
ZERO = np.float32(0.0)


@dataclass(frozen=True)
class FusedTerm:
    """A kernel and its arguments after ``out``: arrays (live views of the term's buffers, or ``Slot`` s filled at each
    call), then ints, floats."""

    kernel: Callable[..., None]
    arrays: tuple[np.ndarray, ...]
    ints: tuple[int, ...] = ()
    floats: tuple[float, ...] = ()


@dataclass(frozen=True)
class Slot:
    """An array argument given at each call, not bound at build: a reset's random draws."""

    index: int


def joint_index(ids: Any, count: int) -> np.ndarray:
    """A resolved ``SceneEntityCfg.joint_ids`` (a slice or a list) as an int64 array."""
    return np.asarray(rewards._indices(ids, count), dtype=np.int64)


def scene_asset(env: Any, cfg: Any) -> Any:
    return env.scene[cfg.name]


def hand_frame(env: Any, cfg: Any) -> tuple[np.ndarray, int]:
    """The body positions of ``cfg``'s asset and the index of its first body (the hand's frame)."""
    return view(scene_asset(env, cfg).data.body_pos_w.torch), int(cfg.body_ids[0])


def command_buffer(env: Any, name: str) -> np.ndarray:
    return view(env.command_manager.get_command(name))


def object_position(env: Any, params: dict) -> np.ndarray:
    return view(env.scene[params["object_cfg"].name].data.root_pos_w.torch)


def jaw_state(env: Any, action_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The gripper's action term as ``object_grasped`` reads it: joint positions, calibration, raw action, jaw id."""
    term = env.action_manager.get_term(action_name)
    data = env.scene[term.cfg.asset_name].data
    return (view(data.joint_pos.torch), view(term.calibration_offset), view(term.raw_actions),
            int(term.joint_ids[0]))


def goal_and_root(env: Any, params: dict, command_name: str | None) -> tuple[np.ndarray, np.ndarray]:
    robot_cfg = params.get("robot_cfg", rewards.ROBOT)
    root = view(env.scene[robot_cfg.name].data.root_pos_w.torch)
    cmd = command_buffer(env, command_name) if command_name is not None else root  # unread without a goal
    return cmd, root


def hand_or_none(env: Any, params: dict) -> tuple[np.ndarray, int, int]:
    ee_cfg = params.get("ee_cfg")
    if ee_cfg is None:
        return object_position(env, params), 0, 0  # unread: use_hand 0
    body_pos, body = hand_frame(env, ee_cfg)
    return body_pos, body, 1


def servo_term(env: Any, action_name: str) -> Any:
    return env.action_manager.get_term(action_name)


# ----------------------------------------------------------------------------- shared arithmetic
@numba.njit(inline="always", error_model="numpy")
def command_error(cmd, body_pos, root_pos, n, body):  # pragma: no cover - compiled
    """|command[:3] - (body - root)| for environment n, as ``rewards._position_error``."""
    s = ZERO
    for j in range(3):
        d = cmd[n, j] - (body_pos[n, body, j] - root_pos[n, j])
        s += d * d
    return np.sqrt(s)


@numba.njit(inline="always", error_model="numpy")
def object_hand_distance(obj_pos, body_pos, n, body):  # pragma: no cover - compiled
    """|object - hand| for environment n, as ``rewards._hand_distance``."""
    s = ZERO
    for j in range(3):
        d = obj_pos[n, j] - body_pos[n, body, j]
        s += d * d
    return np.sqrt(s)


@numba.njit(inline="always", error_model="numpy")
def held_up(obj_pos, body_pos, n, body, use_hand, minimal_height, max_ee_distance):  # pragma: no cover - compiled
    """``rewards._held_up`` for environment n (``use_hand`` 0: the height alone)."""
    up = obj_pos[n, 2] > minimal_height
    if use_hand:
        up = up and object_hand_distance(obj_pos, body_pos, n, body) < max_ee_distance
    return up


@numba.njit(inline="always", error_model="numpy")
def above_goal(cmd, obj_pos, root_pos, n):  # pragma: no cover - compiled
    """``rewards._height_above_goal``: -(goal z - (object z - root z))."""
    return -(cmd[n, 2] - (obj_pos[n, 2] - root_pos[n, 2]))
