"""Fused forms of the observation terms (``mdp.observations``): each kernel writes its columns of the group's
buffer, ``out[n, col + j]``; ``col`` is its last int, appended by the manager. ``uniform_noise_kernel`` adds a term's
uniform noise from draws made as ``noise.uniform_noise`` makes them."""

from __future__ import annotations

from typing import Any

import numpy as np

from roarm_lab.embedded.managers.fused import view
from roarm_lab.mdp import observations
from roarm_lab.mdp.fused.common import (FusedTerm, command_buffer, goal_and_root, hand_frame, joint_index,
                                      object_position, scene_asset, servo_term)
from roarm_lab.utils.jit import kernel


@kernel
def _joint_difference_kernel(out, a, b, cols, col):  # pragma: no cover - compiled
    """``joint_pos_rel``: a[:, cols] - b[:, cols]."""
    for n in range(out.shape[0]):
        for j in range(cols.shape[0]):
            out[n, col + j] = a[n, cols[j]] - b[n, cols[j]]


@kernel
def _servo_reading_kernel(out, joint_pos, calibration, home, cols, col):  # pragma: no cover - compiled
    """``servo_joint_pos_rel``: (q - calibration) - home over the action's joints."""
    for n in range(out.shape[0]):
        for j in range(cols.shape[0]):
            out[n, col + j] = (joint_pos[n, cols[j]] - calibration[n, j]) - home[n, j]


@kernel
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


@kernel
def _ring_slot_kernel(out, history, home, head, col):  # pragma: no cover - compiled
    """``joint_target_rel``: the newest slot of the action term's target ring, less home."""
    h = head[0]
    for n in range(out.shape[0]):
        for j in range(home.shape[1]):
            out[n, col + j] = history[n, h, j] - home[n, j]


@kernel
def _copy_kernel(out, a, col):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        for j in range(a.shape[1]):
            out[n, col + j] = a[n, j]


@kernel
def _difference_kernel(out, a, b, col):  # pragma: no cover - compiled
    """a - b for (N, 3) points (``object_position_b``)."""
    for n in range(out.shape[0]):
        for j in range(3):
            out[n, col + j] = a[n, j] - b[n, j]


@kernel
def _hand_in_base_kernel(out, body_pos, root, body, col):  # pragma: no cover - compiled
    """``ee_position_b``: body - root."""
    for n in range(out.shape[0]):
        for j in range(3):
            out[n, col + j] = body_pos[n, body, j] - root[n, j]


@kernel
def _command_minus_point_kernel(out, cmd, point, root, body, col):  # pragma: no cover - compiled
    """cmd[:, :3] - (point - root): ``ee_position_error_b`` (point: a body of (N, B, 3), ``body`` >= 0)."""
    for n in range(out.shape[0]):
        for j in range(3):
            out[n, col + j] = cmd[n, j] - (point[n, body, j] - root[n, j])


@kernel
def _command_minus_object_kernel(out, cmd, obj, root, col):  # pragma: no cover - compiled
    """``object_goal_vector_b``: cmd[:, :3] - (object - root)."""
    for n in range(out.shape[0]):
        for j in range(3):
            out[n, col + j] = cmd[n, j] - (obj[n, j] - root[n, j])


@kernel
def _object_minus_hand_kernel(out, obj, body_pos, body, col):  # pragma: no cover - compiled
    """``object_ee_vector_b``: object - hand."""
    for n in range(out.shape[0]):
        for j in range(3):
            out[n, col + j] = obj[n, j] - body_pos[n, body, j]


@kernel
def _height_kernel(out, obj, col, rest):  # pragma: no cover - compiled
    """``object_height_above``."""
    for n in range(out.shape[0]):
        out[n, col] = obj[n, 2] - rest


@kernel
def uniform_noise_kernel(out, u, col, span, low):  # pragma: no cover - compiled
    """``noise.uniform_noise`` (operation add) with the draws ``u`` made as it makes them: + (u * span + low)."""
    for n in range(out.shape[0]):
        for j in range(u.shape[1]):
            out[n, col + j] = out[n, col + j] + (u[n, j] * span + low)


def _servo_reading(env: Any, term: Any, params: dict) -> FusedTerm:
    servo = servo_term(env, params["action_name"])
    data = env.scene[servo.cfg.asset_name].data
    return FusedTerm(_servo_reading_kernel, (view(data.joint_pos.torch), view(servo.calibration_offset),
                                             view(servo.default_joint_pos), np.asarray(servo.joint_ids, np.int64)))


def _servo_velocity(env: Any, term: Any, params: dict) -> FusedTerm:
    servo = servo_term(env, params["action_name"])
    data = env.scene[servo.cfg.asset_name].data
    return FusedTerm(_servo_velocity_kernel,
                     (view(data.joint_pos.torch), view(servo.calibration_offset), view(servo.default_joint_pos),
                      view(term._prev), view(term._last), view(term._fresh), term._step, env._step_counter,
                      np.asarray(servo.joint_ids, np.int64)), (), (env.step_dt,))


def _joint_target(env: Any, term: Any, params: dict) -> FusedTerm:
    servo = servo_term(env, params["action_name"])
    return FusedTerm(_ring_slot_kernel, (view(servo._history), view(servo.default_joint_pos), servo._head_slot))


def _generated_commands(env: Any, term: Any, params: dict) -> FusedTerm:
    return FusedTerm(_copy_kernel, (command_buffer(env, params["command_name"]),))


def _last_action(env: Any, term: Any, params: dict) -> FusedTerm:
    name = params.get("action_name")
    source = env.action_manager.action if name is None else env.action_manager.get_term(name).raw_actions
    return FusedTerm(_copy_kernel, (view(source),))


def _joint_pos_rel(env: Any, term: Any, params: dict) -> FusedTerm:
    cfg = params.get("asset_cfg", observations.ROBOT)
    data = scene_asset(env, cfg).data
    return FusedTerm(_joint_difference_kernel, (view(data.joint_pos.torch), view(data.default_joint_pos.torch),
                                                joint_index(cfg.joint_ids, data.joint_pos.torch.shape[1])))


def _ee_position_b(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = hand_frame(env, params["asset_cfg"])
    root = view(scene_asset(env, params["asset_cfg"]).data.root_pos_w.torch)
    return FusedTerm(_hand_in_base_kernel, (body_pos, root),
                     (body,))


def _ee_position_error_b(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = hand_frame(env, params["asset_cfg"])
    root = view(scene_asset(env, params["asset_cfg"]).data.root_pos_w.torch)
    cmd = command_buffer(env, params["command_name"])
    return FusedTerm(_command_minus_point_kernel, (cmd, body_pos, root), (body,))


def _object_position_b(env: Any, term: Any, params: dict) -> FusedTerm:
    root = view(env.scene[params.get("robot_cfg", observations.ROBOT).name].data.root_pos_w.torch)
    return FusedTerm(_difference_kernel, (object_position(env, params), root))


def _object_ee_vector_b(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = hand_frame(env, params["asset_cfg"])
    return FusedTerm(_object_minus_hand_kernel, (object_position(env, params), body_pos), (body,))


def _object_goal_vector_b(env: Any, term: Any, params: dict) -> FusedTerm:
    cmd, root = goal_and_root(env, params, params["command_name"])
    return FusedTerm(_command_minus_object_kernel, (cmd, object_position(env, params), root))


def _object_height_above(env: Any, term: Any, params: dict) -> FusedTerm:
    return FusedTerm(_height_kernel, (object_position(env, params),), (), (params["rest_height"],))


FORMS = {
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
