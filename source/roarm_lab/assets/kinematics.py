"""Forward kinematics of the arm from the compiled MuJoCo model (no hand-written kinematics)."""

from __future__ import annotations

from functools import lru_cache

import mujoco
import numpy as np

from roarm_lab.assets.joint_table import BASE_HEIGHT_M, FIRMWARE_FRAME_OFFSET_M, TCP_FRAME, TCP_LINK
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


def hand_down_ik(target_world: np.ndarray, jaw_yaw: float, start: np.ndarray, iterations: int = 200,
                 tolerance_m: float = 1e-3, frame: str = TCP_FRAME) -> np.ndarray | None:
    """The five arm joints that put the hand's ``frame`` (a site: the TCP, the grasp centre) at ``target_world`` with
    the hand pointing down and the jaws closing along the horizontal direction ``jaw_yaw`` (rad from -y: 0 at base 0
    and roll 0); None where it cannot.

    Damped least squares on the model's own Jacobians, from ``start``, kept inside the safe box (the model's
    joint ranges): a grasp pose for a scripted grasp or a task's reset, not a controller.
    """
    model = _model()
    data = mujoco.MjData(model)
    site, link = model.site(frame).id, model.body(TCP_LINK).id
    jaw_axis = np.array([np.sin(jaw_yaw), -np.cos(jaw_yaw), 0.0])
    target = np.asarray(target_world, dtype=np.float64)
    q = np.array(start, dtype=np.float64)[:5].copy()
    lo, hi = model.jnt_range[:5, 0], model.jnt_range[:5, 1]
    jp, jr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
    for _ in range(iterations):
        data.qpos[:5] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        rot = data.xmat[link].reshape(3, 3)
        err = np.concatenate([target - data.site_xpos[site], 0.3 * np.cross(rot[:, 2], [0.0, 0.0, -1.0]),
                              0.3 * np.cross(rot[:, 0], jaw_axis)])
        if np.linalg.norm(err[:3]) < 1e-5 and np.linalg.norm(err[3:]) < 1e-4:
            break
        mujoco.mj_jacSite(model, data, jp, jr, site)
        jac = np.vstack([jp, 0.3 * jr, 0.3 * jr])[:, :5]
        q = np.clip(q + jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(9), err), lo, hi)
    data.qpos[:5] = q
    mujoco.mj_kinematics(model, data)
    rot = data.xmat[link].reshape(3, 3)
    ok = np.linalg.norm(target - data.site_xpos[site]) < tolerance_m and rot[2, 2] < -0.99 and rot[:, 0] @ jaw_axis > 0.99
    return q if ok else None
