"""Fused forms of the termination terms (``mdp.terminations``): one kernel per term, writing ``out[n]`` (bool)."""

from __future__ import annotations

from typing import Any

import numpy as np

from roarm_lab.embedded.managers.fused import view
from roarm_lab.mdp import terminations
from roarm_lab.mdp.fused.common import FusedTerm, joint_index, scene_asset
from roarm_lab.utils.jit import kernel


@kernel
def _time_out_kernel(out, episode_length, max_length):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        out[n] = episode_length[n] >= max_length


@kernel
def _velocity_diverged_kernel(out, joint_vel, cols, max_velocity):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        bad = False
        for j in cols:
            if not abs(joint_vel[n, j]) <= max_velocity:  # NaN compares false: non-finite counts as diverged
                bad = True
        out[n] = bad


@kernel
def _height_below_kernel(out, pos, minimum):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        out[n] = pos[n, 2] < minimum


@kernel
def _off_table_kernel(out, pos, origins, half_x, half_y):  # pragma: no cover - compiled
    for n in range(out.shape[0]):
        x, y, z = pos[n, 0] - origins[n, 0], pos[n, 1] - origins[n, 1], pos[n, 2] - origins[n, 2]
        out[n] = not (abs(x) <= half_x and abs(y) <= half_y and np.isfinite(z))


def _time_out(env: Any, term: Any, params: dict) -> FusedTerm:
    return FusedTerm(_time_out_kernel, (view(env.episode_length_buf),), (int(env.max_episode_length),))


def _velocity_diverged(env: Any, term: Any, params: dict) -> FusedTerm:
    data = scene_asset(env, params["asset_cfg"]).data
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


FORMS = {
    terminations.time_out: _time_out,
    terminations.joint_velocity_diverged: _velocity_diverged,
    terminations.root_height_below_minimum: _height_below,
    terminations.object_off_table: _off_table,
}
