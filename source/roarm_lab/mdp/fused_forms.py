"""Fused forms of the reward and termination terms: each term's arithmetic as a numba loop over the same buffers.

The readable term functions (``rewards``, ``terminations``) stay the source of truth; each form here restates one
of them over numpy views of the buffers that function reads, and ``tests/test_fused_managers.py`` holds every form
to its function term by term, on reach's and lift's states, so a form that drifts fails there. The embedded
runtime's managers (``embedded/managers/fused.py``) compose a task's forms into one compiled call per manager: the
managers' cost is some 60 small torch operations a step, each a few microseconds of dispatch for a few hundred
floats of work, and one call does the same work in one dispatch.

A form is ``bind(env, term, params) -> FusedTerm``: the kernel and what it reads. The kernels write one row:
``out[n]`` for environment ``n``, float32 (rewards) or bool (terminations), in torch's float32 arithmetic
(float32 constants, the same order of operations), so the two paths agree to float32 rounding. A term without a
form (a user's own function) keeps the readable path for its whole manager.

The kernels are cached by numba beside this file, as ``policy.numba_kernels`` is (the same trust as the code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numba
import numpy as np

from roarm_lab.embedded.managers.fused import view
from roarm_lab.mdp import observations, rewards, terminations

_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


@dataclass(frozen=True)
class FusedTerm:
    """A kernel and its arguments after ``out``: arrays (live views of the term's buffers), then ints, floats."""

    kernel: Callable[..., None]
    arrays: tuple[np.ndarray, ...]
    ints: tuple[int, ...] = ()
    floats: tuple[float, ...] = ()


def joint_index(ids: Any, count: int) -> np.ndarray:
    """A resolved ``SceneEntityCfg.joint_ids`` (a slice or a list) as an int64 array."""
    return np.asarray(rewards._indices(ids, count), dtype=np.int64)


def _robot(env: Any, cfg: Any) -> Any:
    return env.scene[cfg.name]


def _hand(env: Any, cfg: Any) -> tuple[np.ndarray, int]:
    """The body positions of ``cfg``'s asset and the index of its first body (the hand's frame)."""
    return view(_robot(env, cfg).data.body_pos_w.torch), int(cfg.body_ids[0])


# ----------------------------------------------------------------------------- shared arithmetic
@numba.njit(inline="always")
def _command_error(cmd, body_pos, root_pos, n, body):  # pragma: no cover - compiled
    """|command[:3] - (body - root)| for environment n, as ``rewards._position_error``."""
    s = _ZERO
    for j in range(3):
        d = cmd[n, j] - (body_pos[n, body, j] - root_pos[n, j])
        s += d * d
    return np.sqrt(s)


@numba.njit(inline="always")
def _object_hand_distance(obj_pos, body_pos, n, body):  # pragma: no cover - compiled
    """|object - hand| for environment n, as ``rewards._hand_distance``."""
    s = _ZERO
    for j in range(3):
        d = obj_pos[n, j] - body_pos[n, body, j]
        s += d * d
    return np.sqrt(s)


@numba.njit(inline="always")
def _held_up(obj_pos, body_pos, n, body, use_hand, minimal_height, max_ee_distance):  # pragma: no cover - compiled
    """``rewards._held_up`` for environment n (``use_hand`` 0: the height alone)."""
    up = obj_pos[n, 2] > minimal_height
    if use_hand:
        up = up and _object_hand_distance(obj_pos, body_pos, n, body) < max_ee_distance
    return up


@numba.njit(inline="always")
def _above_goal(cmd, obj_pos, root_pos, n):  # pragma: no cover - compiled
    """``rewards._height_above_goal``: -(goal z - (object z - root z))."""
    return -(cmd[n, 2] - (obj_pos[n, 2] - root_pos[n, 2]))


# ----------------------------------------------------------------------------- reward kernels
@numba.njit(cache=True)
def _position_error_kernel(out, cmd, body_pos, root_pos, body, mode, param):  # pragma: no cover - compiled
    """mode 0: the distance; 1: 1 - tanh(d / param); 2: d < param."""
    for n in range(out.shape[0]):
        d = _command_error(cmd, body_pos, root_pos, n, body)
        if mode == 0:
            out[n] = d
        elif mode == 1:
            out[n] = _ONE - np.tanh(d / param)
        else:
            out[n] = _ONE if d < param else _ZERO


@numba.njit(cache=True)
def _squared_difference_kernel(out, a, b):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        s = _ZERO
        for j in range(a.shape[1]):
            d = a[n, j] - b[n, j]
            s += d * d
        out[n] = s


@numba.njit(cache=True)
def _squared_kernel(out, values, cols):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        s = _ZERO
        for j in cols:
            s += values[n, j] * values[n, j]
        out[n] = s


@numba.njit(cache=True)
def _deviation_kernel(out, q, home, cols):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        s = _ZERO
        for j in cols:
            s += abs(q[n, j] - home[n, j])
        out[n] = s


@numba.njit(cache=True)
def _outside_box_kernel(out, q, cols, low, high):  # pragma: no cover - compiled
    """Sum of |q - clamp(q, low, high)| over ``cols``; ``low``/``high`` are (N, k) (``_outside_box_l1``)."""
    for n in range(out.shape[0]):
        s = _ZERO
        for i in range(cols.shape[0]):
            v = q[n, cols[i]]
            c = min(max(v, low[n, i]), high[n, i])
            s += abs(v - c)
        out[n] = s


@numba.njit(cache=True)
def _object_ee_distance_kernel(out, obj_pos, body_pos, body, std):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        out[n] = _ONE - np.tanh(_object_hand_distance(obj_pos, body_pos, n, body) / std)


@numba.njit(cache=True)
def _object_grasped_kernel(out, joint_pos, calibration, raw, obj_pos, body_pos, jaw, body, min_opening,
                           max_ee_distance):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        opening = joint_pos[n, jaw] - calibration[n, 0]
        held = _object_hand_distance(obj_pos, body_pos, n, body) < max_ee_distance
        out[n] = _ONE if (raw[n, 0] < _ZERO and opening > min_opening and held) else _ZERO


@numba.njit(cache=True)
def _object_is_lifted_kernel(out, obj_pos, body_pos, cmd, root_pos, body, use_hand, use_goal, minimal_height,
                             max_ee_distance, max_above_goal):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        lifted = _held_up(obj_pos, body_pos, n, body, use_hand, minimal_height, max_ee_distance)
        if use_goal:
            lifted = lifted and _above_goal(cmd, obj_pos, root_pos, n) <= max_above_goal
        out[n] = _ONE if lifted else _ZERO


@numba.njit(cache=True)
def _object_goal_distance_kernel(out, obj_pos, body_pos, cmd, root_pos, body, use_hand, std, minimal_height,
                                 max_ee_distance):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        s = _ZERO
        for j in range(3):
            d = cmd[n, j] - (obj_pos[n, j] - root_pos[n, j])
            s += d * d
        held = _held_up(obj_pos, body_pos, n, body, use_hand, minimal_height, max_ee_distance)
        out[n] = (_ONE if held else _ZERO) * (_ONE - np.tanh(np.sqrt(s) / std))


@numba.njit(cache=True)
def _object_lift_progress_kernel(out, obj_pos, body_pos, cmd, root_pos, joint_pos, calibration, raw, body, jaw,
                                 rest_height, min_opening, max_ee_distance,
                                 max_above_goal):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        height = obj_pos[n, 2] - rest_height
        above = _above_goal(cmd, obj_pos, root_pos, n)
        progress = min(max(height / max(height - above, np.float32(1e-3)), _ZERO), _ONE)
        opening = joint_pos[n, jaw] - calibration[n, 0]
        held = _object_hand_distance(obj_pos, body_pos, n, body) < max_ee_distance
        grasped = _ONE if (raw[n, 0] < _ZERO and opening > min_opening and held) else _ZERO
        out[n] = grasped * progress * (_ONE if above <= max_above_goal else _ZERO)


# ----------------------------------------------------------------------------- termination kernels
@numba.njit(cache=True)
def _time_out_kernel(out, episode_length, max_length):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        out[n] = episode_length[n] >= max_length


@numba.njit(cache=True)
def _velocity_diverged_kernel(out, joint_vel, cols, max_velocity):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        bad = False
        for j in cols:
            if not abs(joint_vel[n, j]) <= max_velocity:  # NaN compares false: non-finite counts as diverged
                bad = True
        out[n] = bad


@numba.njit(cache=True)
def _height_below_kernel(out, pos, minimum):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        out[n] = pos[n, 2] < minimum


@numba.njit(cache=True)
def _off_table_kernel(out, pos, origins, half_x, half_y):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        x, y, z = pos[n, 0] - origins[n, 0], pos[n, 1] - origins[n, 1], pos[n, 2] - origins[n, 2]
        out[n] = not (abs(x) <= half_x and abs(y) <= half_y and np.isfinite(z))


# ----------------------------------------------------------------------------- observation kernels
# An observation kernel writes its columns of the group's buffer, ``out[n, col + j]``; ``col`` is its first int.
@numba.njit(cache=True)
def _joint_difference_kernel(out, a, b, cols, col):  # pragma: no cover - compiled
    """``joint_pos_rel``: a[:, cols] - b[:, cols]."""
    for n in range(out.shape[0]):
        for j in range(cols.shape[0]):
            out[n, col + j] = a[n, cols[j]] - b[n, cols[j]]


@numba.njit(cache=True)
def _servo_reading_kernel(out, joint_pos, calibration, home, cols, col):  # pragma: no cover - compiled
    """``servo_joint_pos_rel``: (q - calibration) - home over the action's joints."""
    for n in range(out.shape[0]):
        for j in range(cols.shape[0]):
            out[n, col + j] = (joint_pos[n, cols[j]] - calibration[n, j]) - home[n, j]


@numba.njit(cache=True)
def _servo_velocity_kernel(out, joint_pos, calibration, home, prev, last, fresh, step, counter, cols, col,
                           step_dt):  # pragma: no cover - compiled
    """``servo_joint_vel_finite_difference.__call__`` on the term's own state buffers."""
    if counter[0] != step[0]:
        prev[:] = last
        step[0] = counter[0]
    for n in range(out.shape[0]):
        for j in range(cols.shape[0]):
            q = (joint_pos[n, cols[j]] - calibration[n, j]) - home[n, j]
            if fresh[n]:
                prev[n, j] = q
            out[n, col + j] = (q - prev[n, j]) / step_dt
            last[n, j] = q
        fresh[n] = False


@numba.njit(cache=True)
def _ring_slot_kernel(out, history, home, head, col):  # pragma: no cover - compiled
    """``joint_target_rel``: the newest slot of the action term's target ring, less home."""
    h = head[0]
    for n in range(out.shape[0]):
        for j in range(home.shape[1]):
            out[n, col + j] = history[n, h, j] - home[n, j]


@numba.njit(cache=True)
def _copy_kernel(out, a, col):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        for j in range(a.shape[1]):
            out[n, col + j] = a[n, j]


@numba.njit(cache=True)
def _difference_kernel(out, a, b, col):  # pragma: no cover - compiled
    """a - b for (N, 3) points (``object_position_b``)."""
    for n in range(out.shape[0]):
        for j in range(3):
            out[n, col + j] = a[n, j] - b[n, j]


@numba.njit(cache=True)
def _hand_in_base_kernel(out, body_pos, root, body, col):  # pragma: no cover - compiled
    """``ee_position_b``: body - root."""
    for n in range(out.shape[0]):
        for j in range(3):
            out[n, col + j] = body_pos[n, body, j] - root[n, j]


@numba.njit(cache=True)
def _command_minus_point_kernel(out, cmd, point, root, body, col):  # pragma: no cover - compiled
    """cmd[:, :3] - (point - root): ``ee_position_error_b`` (point: a body of (N, B, 3), ``body`` >= 0)."""
    for n in range(out.shape[0]):
        for j in range(3):
            out[n, col + j] = cmd[n, j] - (point[n, body, j] - root[n, j])


@numba.njit(cache=True)
def _command_minus_object_kernel(out, cmd, obj, root, col):  # pragma: no cover - compiled
    """``object_goal_vector_b``: cmd[:, :3] - (object - root)."""
    for n in range(out.shape[0]):
        for j in range(3):
            out[n, col + j] = cmd[n, j] - (obj[n, j] - root[n, j])


@numba.njit(cache=True)
def _object_minus_hand_kernel(out, obj, body_pos, body, col):  # pragma: no cover - compiled
    """``object_ee_vector_b``: object - hand."""
    for n in range(out.shape[0]):
        for j in range(3):
            out[n, col + j] = obj[n, j] - body_pos[n, body, j]


@numba.njit(cache=True)
def _height_kernel(out, obj, col, rest):  # pragma: no cover - compiled
    """``object_height_above``."""
    for n in range(out.shape[0]):
        out[n, col] = obj[n, 2] - rest


@numba.njit(cache=True)
def uniform_noise_kernel(out, u, col, span, low):  # pragma: no cover - compiled
    """``noise.uniform_noise`` (operation add) with the draws ``u`` made as it makes them: + (u * span + low)."""
    for n in range(out.shape[0]):
        for j in range(u.shape[1]):
            out[n, col + j] = out[n, col + j] + (u[n, j] * span + low)


# ----------------------------------------------------------------------------- binders: term -> FusedTerm
def _command(env: Any, name: str) -> np.ndarray:
    return view(env.command_manager.get_command(name))


def _position_error_form(mode: int, param_name: str | None) -> Callable[..., FusedTerm]:
    def bind(env: Any, term: Any, params: dict) -> FusedTerm:
        body_pos, body = _hand(env, params["asset_cfg"])
        root = view(_robot(env, params["asset_cfg"]).data.root_pos_w.torch)
        param = params[param_name] if param_name else 0.0
        return FusedTerm(_position_error_kernel, (_command(env, params["command_name"]), body_pos, root),
                         (body, mode), (param,))
    return bind


def _action_rate(env: Any, term: Any, params: dict) -> FusedTerm:
    return FusedTerm(_squared_difference_kernel, (view(env.action_manager.action), view(env.action_manager.prev_action)))


def _joint_vel_l2(env: Any, term: Any, params: dict) -> FusedTerm:
    data = _robot(env, params["asset_cfg"]).data
    return FusedTerm(_squared_kernel, (view(data.joint_vel.torch),
                                       joint_index(params["asset_cfg"].joint_ids, data.joint_vel.torch.shape[1])))


def _joint_deviation(env: Any, term: Any, params: dict) -> FusedTerm:
    data = _robot(env, params["asset_cfg"]).data
    cols = joint_index(params["asset_cfg"].joint_ids, data.joint_pos.torch.shape[1])
    return FusedTerm(_deviation_kernel, (view(data.joint_pos.torch), view(data.default_joint_pos.torch), cols))


def _near_limits(env: Any, term: Any, params: dict) -> FusedTerm:
    data = _robot(env, params["asset_cfg"]).data
    cols = joint_index(params["asset_cfg"].joint_ids, data.joint_pos.torch.shape[1])
    limits = data.soft_joint_pos_limits.torch[:, cols]
    margin = params["margin"]
    # the band's edges, as the function computes them (float32): fixed limits, so computed once
    low, high = (limits[..., 0] + margin).contiguous(), (limits[..., 1] - margin).contiguous()
    return FusedTerm(_outside_box_kernel, (view(data.joint_pos.torch), cols, view(low), view(high)))


def _workspace_box(env: Any, term: Any, params: dict) -> FusedTerm:
    data = _robot(env, params["asset_cfg"]).data
    cols = joint_index(params["asset_cfg"].joint_ids, data.joint_pos.torch.shape[1])
    n = env.num_envs
    low, high = term._low.expand(n, -1).contiguous(), term._high.expand(n, -1).contiguous()
    return FusedTerm(_outside_box_kernel, (view(data.joint_pos.torch), cols, view(low), view(high)))


def _object(env: Any, params: dict) -> np.ndarray:
    return view(env.scene[params["object_cfg"].name].data.root_pos_w.torch)


def _object_ee_distance(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = _hand(env, params["ee_cfg"])
    return FusedTerm(_object_ee_distance_kernel, (_object(env, params), body_pos), (body,), (params["std"],))


def _jaw(env: Any, action_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The gripper's action term as ``object_grasped`` reads it: joint positions, calibration, raw action, jaw id."""
    term = env.action_manager.get_term(action_name)
    data = env.scene[term.cfg.asset_name].data
    return (view(data.joint_pos.torch), view(term.calibration_offset), view(term.raw_actions),
            int(term.joint_ids[0]))


def _object_grasped(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = _hand(env, params["ee_cfg"])
    joint_pos, calibration, raw, jaw = _jaw(env, params["action_name"])
    return FusedTerm(_object_grasped_kernel, (joint_pos, calibration, raw, _object(env, params), body_pos),
                     (jaw, body), (params["min_opening"], params["max_ee_distance"]))


def _goal_and_root(env: Any, params: dict, command_name: str | None) -> tuple[np.ndarray, np.ndarray]:
    robot_cfg = params.get("robot_cfg", rewards.ROBOT)
    root = view(env.scene[robot_cfg.name].data.root_pos_w.torch)
    cmd = _command(env, command_name) if command_name is not None else root  # unread without a goal
    return cmd, root


def _hand_or_none(env: Any, params: dict) -> tuple[np.ndarray, int, int]:
    ee_cfg = params.get("ee_cfg")
    if ee_cfg is None:
        return _object(env, params), 0, 0  # unread: use_hand 0
    body_pos, body = _hand(env, ee_cfg)
    return body_pos, body, 1


def _object_is_lifted(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body, use_hand = _hand_or_none(env, params)
    command_name = params.get("command_name")
    cmd, root = _goal_and_root(env, params, command_name)
    return FusedTerm(_object_is_lifted_kernel, (_object(env, params), body_pos, cmd, root),
                     (body, use_hand, int(command_name is not None)),
                     (params["minimal_height"], params.get("max_ee_distance", 0.04), params.get("max_above_goal", 0.03)))


def _object_goal_distance(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body, use_hand = _hand_or_none(env, params)
    cmd, root = _goal_and_root(env, params, params["command_name"])
    return FusedTerm(_object_goal_distance_kernel, (_object(env, params), body_pos, cmd, root), (body, use_hand),
                     (params["std"], params["minimal_height"], params.get("max_ee_distance", 0.04)))


def _object_lift_progress(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = _hand(env, params["ee_cfg"])
    cmd, root = _goal_and_root(env, params, params["command_name"])
    joint_pos, calibration, raw, jaw = _jaw(env, params["action_name"])
    return FusedTerm(_object_lift_progress_kernel,
                     (_object(env, params), body_pos, cmd, root, joint_pos, calibration, raw), (body, jaw),
                     (params["rest_height"], params["min_opening"], params["max_ee_distance"],
                      params.get("max_above_goal", 0.03)))


def _time_out(env: Any, term: Any, params: dict) -> FusedTerm:
    return FusedTerm(_time_out_kernel, (view(env.episode_length_buf),), (int(env.max_episode_length),))


def _velocity_diverged(env: Any, term: Any, params: dict) -> FusedTerm:
    data = _robot(env, params["asset_cfg"]).data
    cols = joint_index(params["asset_cfg"].joint_ids, data.joint_vel.torch.shape[1])
    return FusedTerm(_velocity_diverged_kernel, (view(data.joint_vel.torch), cols), (), (params["max_velocity"],))


def _height_below(env: Any, term: Any, params: dict) -> FusedTerm:
    pos = view(env.scene[params["asset_cfg"].name].data.root_pos_w.torch)
    return FusedTerm(_height_below_kernel, (pos,), (), (params["minimum_height"],))


def _off_table(env: Any, term: Any, params: dict) -> FusedTerm:
    pos = view(env.scene[params["asset_cfg"].name].data.root_pos_w.torch)
    half_x, half_y = params["half_extent"]
    return FusedTerm(_off_table_kernel, (pos, view(env.scene.env_origins)), (), (half_x, half_y))


# observation binders: ``col`` (the term's first column in its group) is appended by the manager
def _servo_term(env: Any, action_name: str) -> Any:
    return env.action_manager.get_term(action_name)


def _servo_reading(env: Any, term: Any, params: dict) -> FusedTerm:
    servo = _servo_term(env, params["action_name"])
    data = env.scene[servo.cfg.asset_name].data
    return FusedTerm(_servo_reading_kernel, (view(data.joint_pos.torch), view(servo.calibration_offset),
                                             view(servo.default_joint_pos), np.asarray(servo.joint_ids, np.int64)))


def _servo_velocity(env: Any, term: Any, params: dict) -> FusedTerm:
    servo = _servo_term(env, params["action_name"])
    data = env.scene[servo.cfg.asset_name].data
    return FusedTerm(_servo_velocity_kernel,
                     (view(data.joint_pos.torch), view(servo.calibration_offset), view(servo.default_joint_pos),
                      view(term._prev), view(term._last), view(term._fresh), term._step, env._step_counter,
                      np.asarray(servo.joint_ids, np.int64)), (), (env.step_dt,))


def _joint_target(env: Any, term: Any, params: dict) -> FusedTerm:
    servo = _servo_term(env, params["action_name"])
    return FusedTerm(_ring_slot_kernel, (view(servo._history), view(servo.default_joint_pos), servo._head_slot))


def _generated_commands(env: Any, term: Any, params: dict) -> FusedTerm:
    return FusedTerm(_copy_kernel, (_command(env, params["command_name"]),))


def _last_action(env: Any, term: Any, params: dict) -> FusedTerm:
    name = params.get("action_name")
    source = env.action_manager.action if name is None else env.action_manager.get_term(name).raw_actions
    return FusedTerm(_copy_kernel, (view(source),))


def _joint_pos_rel(env: Any, term: Any, params: dict) -> FusedTerm:
    cfg = params.get("asset_cfg", observations.ROBOT)
    data = _robot(env, cfg).data
    return FusedTerm(_joint_difference_kernel, (view(data.joint_pos.torch), view(data.default_joint_pos.torch),
                                                joint_index(cfg.joint_ids, data.joint_pos.torch.shape[1])))


def _ee_position_b(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = _hand(env, params["asset_cfg"])
    return FusedTerm(_hand_in_base_kernel, (body_pos, view(_robot(env, params["asset_cfg"]).data.root_pos_w.torch)),
                     (body,))


def _ee_position_error_b(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = _hand(env, params["asset_cfg"])
    root = view(_robot(env, params["asset_cfg"]).data.root_pos_w.torch)
    return FusedTerm(_command_minus_point_kernel, (_command(env, params["command_name"]), body_pos, root), (body,))


def _object_position_b(env: Any, term: Any, params: dict) -> FusedTerm:
    root = view(env.scene[params.get("robot_cfg", observations.ROBOT).name].data.root_pos_w.torch)
    return FusedTerm(_difference_kernel, (_object(env, params), root))


def _object_ee_vector_b(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = _hand(env, params["asset_cfg"])
    return FusedTerm(_object_minus_hand_kernel, (_object(env, params), body_pos), (body,))


def _object_goal_vector_b(env: Any, term: Any, params: dict) -> FusedTerm:
    cmd, root = _goal_and_root(env, params, params["command_name"])
    return FusedTerm(_command_minus_object_kernel, (cmd, _object(env, params), root))


def _object_height_above(env: Any, term: Any, params: dict) -> FusedTerm:
    return FusedTerm(_height_kernel, (_object(env, params),), (), (params["rest_height"],))


FUSED_FORMS: dict[Any, Callable[[Any, Any, dict], FusedTerm]] = {
    rewards.position_command_error: _position_error_form(0, None),
    rewards.position_command_error_tanh: _position_error_form(1, "std"),
    rewards.position_goal_bonus: _position_error_form(2, "tolerance"),
    rewards.action_rate_l2: _action_rate,
    rewards.joint_vel_l2: _joint_vel_l2,
    rewards.joint_deviation_l1: _joint_deviation,
    rewards.joint_near_limits_l1: _near_limits,
    rewards.joint_outside_workspace_box_l1: _workspace_box,
    rewards.object_ee_distance: _object_ee_distance,
    rewards.object_grasped: _object_grasped,
    rewards.object_is_lifted: _object_is_lifted,
    rewards.object_goal_distance: _object_goal_distance,
    rewards.object_lift_progress: _object_lift_progress,
    terminations.time_out: _time_out,
    terminations.joint_velocity_diverged: _velocity_diverged,
    terminations.root_height_below_minimum: _height_below,
    terminations.object_off_table: _off_table,
    observations.servo_joint_pos_rel: _servo_reading,
    observations.servo_joint_vel_finite_difference: _servo_velocity,
    observations.joint_target_rel: _joint_target,
    observations.generated_commands: _generated_commands,
    observations.last_action: _last_action,
    observations.joint_pos_rel: _joint_pos_rel,
    observations.ee_position_b: _ee_position_b,
    observations.ee_position_error_b: _ee_position_error_b,
    observations.object_position_b: _object_position_b,
    observations.object_ee_vector_b: _object_ee_vector_b,
    observations.object_goal_vector_b: _object_goal_vector_b,
    observations.object_height_above: _object_height_above,
}
"""The readable term (a function, or a term class) -> its fused form's binder."""


def fused_form(term: Any) -> Callable[[Any, Any, dict], FusedTerm] | None:
    """The binder of a resolved term (a function, or an instance of a term class); None where it has none."""
    return FUSED_FORMS.get(term) or FUSED_FORMS.get(type(term))
