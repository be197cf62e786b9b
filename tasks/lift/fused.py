"""The fused form of lift's own reset term, ``mdp.reset_grasp_ready`` (see ``roarm_lab.mdp.fused``).

Its draws are the term's own calls in its order: which resets start grasp-ready (``torch.rand``), which pose each
takes (``torch.randint``, only when one does), and the cube's pose from the pose bank, the yaw's sines in torch as
the term computes them. The kernel writes the chosen arm poses (and zero velocities) into the articulation's
buffers and stages the cube's pose (at rest) for the object's row write.
"""

from __future__ import annotations

from typing import Any

import torch

from roarm_lab.embedded.managers.fused import view
from roarm_lab.mdp.fused.common import FusedTerm, Slot, joint_index
from roarm_lab.mdp.fused.events import FusedEvent
from roarm_lab.utils.jit import kernel


@kernel
def _grasp_ready_kernel(ids, chosen, joints, pose, joint_pos, joint_vel, cols, cube_pose, cube_velocity,
                        staged):  # pragma: no cover - compiled
    """``chosen``: positions in ``ids`` of the grasp-ready resets, ``joints`` and ``pose`` theirs."""
    for r in range(chosen.shape[0]):
        e = ids[chosen[r]]
        for j in range(cols.shape[0]):
            joint_pos[e, cols[j]] = joints[r, j]
            joint_vel[e, cols[j]] = 0.0
        for k in range(7):
            cube_pose[e, k] = pose[r, k]
        for k in range(6):
            cube_velocity[e, k] = 0.0
        staged[e] = True


def grasp_ready(env: Any, term: Any, params: dict) -> FusedEvent:
    """The binder ``reset_grasp_ready.fused_form`` names."""
    robot_cfg, cube_cfg = params["asset_cfg"], params["object_cfg"]
    robot, cube = env.scene[robot_cfg.name], env.scene[cube_cfg.name]
    fraction, cube_z = params["fraction"], params["cube_z"]
    width = term._poses.shape[1]

    def draw(n: int) -> tuple[torch.Tensor, ...]:
        chosen = torch.nonzero(torch.rand(n, device=env.device) < fraction).flatten()
        if len(chosen) == 0:  # the term returns before drawing poses
            return chosen, torch.zeros(0, width), torch.zeros(0, 7)
        pick = torch.randint(len(term._poses), (len(chosen),), device=env.device)
        x, y, yaw = term._cubes[pick].unbind(1)
        half = yaw / 2
        zero = torch.zeros_like(x)
        return chosen, term._poses[pick], torch.stack([x, y, zero + cube_z, zero, zero, half.sin(), half.cos()], 1)

    cols = joint_index(robot_cfg.joint_ids, robot.num_joints)
    return FusedEvent(draw, FusedTerm(_grasp_ready_kernel,
                                      (Slot(0), Slot(1), Slot(2), view(robot.data.joint_pos.torch),
                                       view(robot.data.joint_vel.torch), cols, view(cube.pending_pose),
                                       view(cube.pending_velocity), view(cube.pending_rows))),
                      {robot_cfg.name: {"joint_pos": None, "joint_vel": None},
                       cube_cfg.name: {"pose": None, "velocity": None}})
