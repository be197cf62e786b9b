"""Forward kinematics of the arm from the compiled MuJoCo model (no hand-written kinematics)."""

from __future__ import annotations

from functools import lru_cache

import mujoco
import numpy as np

from roarm_lab.assets.joint_table import BASE_HEIGHT_M, FIRMWARE_FRAME_OFFSET_M, TCP_FRAME
from roarm_lab.assets.mjcf import build_model


@lru_cache(maxsize=1)
def _model() -> mujoco.MjModel:
    return build_model()


def tcp_positions_world(q: np.ndarray) -> np.ndarray:
    """(N, 3) world positions of ``hand_tcp`` for joint vectors ``q`` (N, k<=6; missing joints are 0)."""
    model = _model()
    data = mujoco.MjData(model)
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    site = model.site(TCP_FRAME).id
    out = np.empty((len(q), 3))
    for i, row in enumerate(q):
        data.qpos[:] = 0.0
        data.qpos[: len(row)] = row
        mujoco.mj_kinematics(model, data)
        out[i] = data.site_xpos[site]
    return out


def tcp_positions_base(q: np.ndarray) -> np.ndarray:
    """TCP positions in the robot base frame (``base_link``: on the base axis, BASE_HEIGHT_M above the table)."""
    return tcp_positions_world(q) - np.array([0.0, 0.0, BASE_HEIGHT_M])


def world_to_firmware_mm(p_world: np.ndarray) -> np.ndarray:
    """World metres to the firmware's Cartesian frame (mm, origin at shoulder-pivot height)."""
    return 1000.0 * (np.asarray(p_world) - np.asarray(FIRMWARE_FRAME_OFFSET_M))


def firmware_mm_to_base(p_mm: np.ndarray) -> np.ndarray:
    """The firmware's Cartesian frame (mm) to the robot base frame (m): how T:1051's x, y, z are observed."""
    offset = np.asarray(FIRMWARE_FRAME_OFFSET_M) - np.array([0.0, 0.0, BASE_HEIGHT_M])
    return np.asarray(p_mm, dtype=np.float64) / 1000.0 + offset
