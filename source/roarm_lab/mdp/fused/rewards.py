"""Fused forms of the reward terms (``mdp.rewards``): one kernel per term, writing ``out[n]`` (float32)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from roarm_lab.embedded.managers.fused import view
from roarm_lab.mdp import rewards
from roarm_lab.mdp.fused.common import (ONE, ZERO, FusedTerm, above_goal, command_buffer, command_error, goal_and_root,
                                      hand_frame, hand_or_none, held_up, jaw_state, joint_index, object_hand_distance,
                                      object_position, scene_asset)
from roarm_lab.utils.jit import kernel


@kernel
def _position_error_kernel(out, cmd, body_pos, root_pos, body, mode, param):  # pragma: no cover - compiled
    """mode 0: the distance; 1: 1 - tanh(d / param); 2: d < param."""
    for n in range(out.shape[0]):
        d = command_error(cmd, body_pos, root_pos, n, body)
        if mode == 0:
            out[n] = d
        elif mode == 1:
            out[n] = ONE - np.tanh(d / param)
        else:
            out[n] = ONE if d < param else ZERO


@kernel
def _squared_difference_kernel(out, a, b):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        s = ZERO
        for j in range(a.shape[1]):
            d = a[n, j] - b[n, j]
            s += d * d
        out[n] = s


@kernel
def _squared_kernel(out, values, cols):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        s = ZERO
        for j in cols:
            s += values[n, j] * values[n, j]
        out[n] = s


@kernel
def _deviation_kernel(out, q, home, cols):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        s = ZERO
        for j in cols:
            s += abs(q[n, j] - home[n, j])
        out[n] = s


@kernel
def _outside_box_kernel(out, q, cols, low, high):  # pragma: no cover - compiled
    """Sum of |q - clamp(q, low, high)| over ``cols``; ``low``/``high`` are (N, k) (``_outside_box_l1``)."""
    for n in range(out.shape[0]):
        s = ZERO
        for i in range(cols.shape[0]):
            v = q[n, cols[i]]
            c = min(max(v, low[n, i]), high[n, i])
            s += abs(v - c)
        out[n] = s


@kernel
def _object_ee_distance_kernel(out, obj_pos, body_pos, body, std):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        out[n] = ONE - np.tanh(object_hand_distance(obj_pos, body_pos, n, body) / std)


@kernel
def _object_grasped_kernel(out, joint_pos, calibration, raw, obj_pos, body_pos, jaw, body, min_opening,
                           max_ee_distance):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        opening = joint_pos[n, jaw] - calibration[n, 0]
        held = object_hand_distance(obj_pos, body_pos, n, body) < max_ee_distance
        out[n] = ONE if (raw[n, 0] < ZERO and opening > min_opening and held) else ZERO


@kernel
def _object_is_lifted_kernel(out, obj_pos, body_pos, cmd, root_pos, body, use_hand, use_goal, minimal_height,
                             max_ee_distance, max_above_goal):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        lifted = held_up(obj_pos, body_pos, n, body, use_hand, minimal_height, max_ee_distance)
        if use_goal:
            lifted = lifted and above_goal(cmd, obj_pos, root_pos, n) <= max_above_goal
        out[n] = ONE if lifted else ZERO


@kernel
def _object_goal_distance_kernel(out, obj_pos, body_pos, cmd, root_pos, body, use_hand, std, minimal_height,
                                 max_ee_distance):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        s = ZERO
        for j in range(3):
            d = cmd[n, j] - (obj_pos[n, j] - root_pos[n, j])
            s += d * d
        held = held_up(obj_pos, body_pos, n, body, use_hand, minimal_height, max_ee_distance)
        out[n] = (ONE if held else ZERO) * (ONE - np.tanh(np.sqrt(s) / std))


@kernel
def _object_lift_progress_kernel(out, obj_pos, body_pos, cmd, root_pos, joint_pos, calibration, raw, body, jaw,
                                 rest_height, min_opening, max_ee_distance,
                                 max_above_goal):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        height = obj_pos[n, 2] - rest_height
        above = above_goal(cmd, obj_pos, root_pos, n)
        progress = min(max(height / max(height - above, np.float32(1e-3)), ZERO), ONE)
        opening = joint_pos[n, jaw] - calibration[n, 0]
        held = object_hand_distance(obj_pos, body_pos, n, body) < max_ee_distance
        grasped = ONE if (raw[n, 0] < ZERO and opening > min_opening and held) else ZERO
        out[n] = grasped * progress * (ONE if above <= max_above_goal else ZERO)


def _position_error_form(mode: int, param_name: str | None) -> Callable[..., FusedTerm]:
    def bind(env: Any, term: Any, params: dict) -> FusedTerm:
        body_pos, body = hand_frame(env, params["asset_cfg"])
        root = view(scene_asset(env, params["asset_cfg"]).data.root_pos_w.torch)
        param = params[param_name] if param_name else 0.0
        return FusedTerm(_position_error_kernel, (command_buffer(env, params["command_name"]), body_pos, root),
                         (body, mode), (param,))
    return bind


def _action_rate(env: Any, term: Any, params: dict) -> FusedTerm:
    actions = env.action_manager
    return FusedTerm(_squared_difference_kernel, (view(actions.action), view(actions.prev_action)))


def _joint_vel_l2(env: Any, term: Any, params: dict) -> FusedTerm:
    data = scene_asset(env, params["asset_cfg"]).data
    return FusedTerm(_squared_kernel, (view(data.joint_vel.torch),
                                       joint_index(params["asset_cfg"].joint_ids, data.joint_vel.torch.shape[1])))


def _joint_deviation(env: Any, term: Any, params: dict) -> FusedTerm:
    data = scene_asset(env, params["asset_cfg"]).data
    cols = joint_index(params["asset_cfg"].joint_ids, data.joint_pos.torch.shape[1])
    return FusedTerm(_deviation_kernel, (view(data.joint_pos.torch), view(data.default_joint_pos.torch), cols))


def _near_limits(env: Any, term: Any, params: dict) -> FusedTerm:
    data = scene_asset(env, params["asset_cfg"]).data
    cols = joint_index(params["asset_cfg"].joint_ids, data.joint_pos.torch.shape[1])
    limits = data.soft_joint_pos_limits.torch[:, cols]
    margin = params["margin"]
    # the band's edges, as the function computes them (float32): fixed limits, so computed once
    low, high = (limits[..., 0] + margin).contiguous(), (limits[..., 1] - margin).contiguous()
    return FusedTerm(_outside_box_kernel, (view(data.joint_pos.torch), cols, view(low), view(high)))


def _workspace_box(env: Any, term: Any, params: dict) -> FusedTerm:
    data = scene_asset(env, params["asset_cfg"]).data
    cols = joint_index(params["asset_cfg"].joint_ids, data.joint_pos.torch.shape[1])
    n = env.num_envs
    low, high = term._low.expand(n, -1).contiguous(), term._high.expand(n, -1).contiguous()
    return FusedTerm(_outside_box_kernel, (view(data.joint_pos.torch), cols, view(low), view(high)))


def _object_ee_distance(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = hand_frame(env, params["ee_cfg"])
    return FusedTerm(_object_ee_distance_kernel, (object_position(env, params), body_pos), (body,), (params["std"],))


def _object_grasped(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = hand_frame(env, params["ee_cfg"])
    joint_pos, calibration, raw, jaw = jaw_state(env, params["action_name"])
    return FusedTerm(_object_grasped_kernel, (joint_pos, calibration, raw, object_position(env, params), body_pos),
                     (jaw, body), (params["min_opening"], params["max_ee_distance"]))


def _object_is_lifted(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body, use_hand = hand_or_none(env, params)
    command_name = params.get("command_name")
    cmd, root = goal_and_root(env, params, command_name)
    return FusedTerm(_object_is_lifted_kernel, (object_position(env, params), body_pos, cmd, root),
                     (body, use_hand, int(command_name is not None)),
                     (params["minimal_height"], params.get("max_ee_distance", 0.04),
                      params.get("max_above_goal", 0.03)))


def _object_goal_distance(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body, use_hand = hand_or_none(env, params)
    cmd, root = goal_and_root(env, params, params["command_name"])
    return FusedTerm(_object_goal_distance_kernel, (object_position(env, params), body_pos, cmd, root),
                     (body, use_hand),
                     (params["std"], params["minimal_height"], params.get("max_ee_distance", 0.04)))


def _object_lift_progress(env: Any, term: Any, params: dict) -> FusedTerm:
    body_pos, body = hand_frame(env, params["ee_cfg"])
    cmd, root = goal_and_root(env, params, params["command_name"])
    joint_pos, calibration, raw, jaw = jaw_state(env, params["action_name"])
    return FusedTerm(_object_lift_progress_kernel,
                     (object_position(env, params), body_pos, cmd, root, joint_pos, calibration, raw), (body, jaw),
                     (params["rest_height"], params["min_opening"], params["max_ee_distance"],
                      params.get("max_above_goal", 0.03)))


FORMS = {
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
}
