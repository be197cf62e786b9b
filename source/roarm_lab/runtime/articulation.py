"""The robot as MDP terms see it: Isaac Lab's ``Articulation`` / ``ArticulationData`` names over a backend.

Terms read ``asset.data.joint_pos``, ``.joint_vel``, ``.body_pos_w``, ``.root_pos_w`` ... as torch
tensors and change the robot through ``write_*_to_sim`` / ``set_*`` methods, exactly as they would in
Isaac Lab; only this class knows a physics backend is underneath.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import torch

from roarm_lab.runtime.backends.base import PhysicsBackend


def _find(names: list[str], keys: str | Sequence[str], preserve_order: bool, kind: str) -> tuple[list[int], list[str]]:
    """Resolve regular expressions to indices, as Isaac Lab's ``string_utils.resolve_matching_names``."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    matched: list[tuple[int, int]] = []
    for k_idx, key in enumerate(keys):
        hits = [i for i, n in enumerate(names) if re.fullmatch(key, n)]
        if not hits:
            raise ValueError(f"no {kind} matches '{key}'; available {kind}s: {names}")
        matched.extend((k_idx, i) for i in hits)
    if not preserve_order:
        matched.sort(key=lambda pair: pair[1])
    ids = list(dict.fromkeys(i for _, i in matched))
    return ids, [names[i] for i in ids]


class ArticulationData:
    """Torch views of the robot state, refreshed once per control step by ``Articulation.update``."""

    def __init__(self, backend: PhysicsBackend, device: str, default_joint_pos: torch.Tensor, root_pos: torch.Tensor):
        n, nj, nb = backend.num_envs, len(backend.joint_names), len(backend.body_names)
        f32 = dict(device=device, dtype=torch.float32)
        self.joint_names = list(backend.joint_names)
        self.body_names = list(backend.body_names)
        self.joint_pos = torch.zeros(n, nj, **f32)
        self.joint_vel = torch.zeros(n, nj, **f32)
        self.default_joint_pos = default_joint_pos.expand(n, nj).clone()
        self.default_joint_vel = torch.zeros(n, nj, **f32)
        limits = torch.as_tensor(backend.joint_limits, **f32)
        self.joint_pos_limits = limits.expand(n, nj, 2).clone()
        self.soft_joint_pos_limits = self.joint_pos_limits.clone()
        self.joint_pos_target = self.default_joint_pos.clone()
        self.body_pos_w = torch.zeros(n, nb, 3, **f32)
        self.root_pos_w = root_pos.expand(n, 3).clone()
        self.root_quat_w = torch.tensor([1.0, 0.0, 0.0, 0.0], **f32).expand(n, 4).clone()
        self.default_mass = torch.as_tensor(backend.default_mass, **f32).expand(n, -1).clone()
        self.default_joint_stiffness = torch.as_tensor(backend.default_kp, **f32).expand(n, nj).clone()
        self.default_joint_damping = torch.as_tensor(backend.default_kv, **f32).expand(n, nj).clone()
        self.default_joint_armature = torch.as_tensor(backend.default_armature, **f32).expand(n, nj).clone()
        self.default_joint_friction_coeff = torch.as_tensor(backend.default_friction, **f32).expand(n, nj).clone()
        self.default_joint_viscous_friction_coeff = torch.as_tensor(backend.default_damping, **f32).expand(n, nj).clone()


class Articulation:
    """The articulated robot of one scene entry."""

    def __init__(self, backend: PhysicsBackend, device: str, default_joint_pos: Sequence[float],
                 root_pos: Sequence[float]):
        self.backend = backend
        self.device = device
        self.num_instances = backend.num_envs
        self.data = ArticulationData(backend, device, torch.tensor(default_joint_pos, dtype=torch.float32,
                                                                   device=device), torch.tensor(root_pos, dtype=torch.float32, device=device))
        self._all = np.arange(backend.num_envs)
        self.update(0.0)

    # ------------------------------------------------------------------ names
    @property
    def joint_names(self) -> list[str]:
        return self.data.joint_names

    @property
    def body_names(self) -> list[str]:
        return self.data.body_names

    @property
    def num_joints(self) -> int:
        return len(self.data.joint_names)

    @property
    def num_bodies(self) -> int:
        return len(self.data.body_names)

    def find_joints(self, name_keys: str | Sequence[str], preserve_order: bool = False) -> tuple[list[int], list[str]]:
        return _find(self.joint_names, name_keys, preserve_order, "joint")

    def find_bodies(self, name_keys: str | Sequence[str], preserve_order: bool = False) -> tuple[list[int], list[str]]:
        return _find(self.body_names, name_keys, preserve_order, "body")

    # ------------------------------------------------------------------ state
    def update(self, dt: float) -> None:
        """Copy the engine state into the torch buffers (reported joint positions include calibration error)."""
        b = self.backend
        self.data.joint_pos.copy_(torch.from_numpy(b.qpos - b.calibration_offset))
        self.data.joint_vel.copy_(torch.from_numpy(b.qvel))
        self.data.body_pos_w.copy_(torch.from_numpy(b.frame_positions()))

    def set_joint_position_target(self, target: torch.Tensor, joint_ids: Sequence[int] | slice | None = None,
                                  env_ids: torch.Tensor | None = None) -> None:
        rows = slice(None) if env_ids is None else env_ids
        cols = slice(None) if joint_ids is None else joint_ids
        if isinstance(rows, torch.Tensor) and not isinstance(cols, slice):
            self.data.joint_pos_target[rows[:, None], torch.as_tensor(cols)] = target
        else:
            self.data.joint_pos_target[rows, cols] = target

    def write_data_to_sim(self) -> None:
        """Push servo targets and the held friction torque into the engine."""
        self.backend.set_targets(self.data.joint_pos_target.cpu().numpy())
        self.backend.apply_joint_friction()

    def write_joint_state_to_sim(self, position: torch.Tensor, velocity: torch.Tensor,
                                 joint_ids: Sequence[int] | slice | None = None,
                                 env_ids: torch.Tensor | None = None) -> None:
        ids = self._ids(env_ids)
        qpos = self.data.joint_pos[ids].clone()
        qvel = self.data.joint_vel[ids].clone()
        cols = slice(None) if joint_ids is None else joint_ids
        qpos[:, cols] = position
        qvel[:, cols] = velocity
        self.backend.write_joint_state(ids, qpos.cpu().double().numpy(), qvel.cpu().double().numpy())
        self.data.joint_pos[ids] = qpos
        self.data.joint_vel[ids] = qvel
        self.data.body_pos_w[ids] = torch.from_numpy(self.backend.frame_positions()[ids]).float()

    # ------------------------------------------------------------------ engine-facing parameter writers
    # Each maps to one PhysX call in Isaac Lab (named in the docstring) and one backend call here.
    def set_masses(self, masses: torch.Tensor, body_ids: Sequence[int], env_ids: torch.Tensor | None = None) -> None:
        """PhysX: ``root_physx_view.set_masses``."""
        self.backend.set_masses(self._ids(env_ids), np.asarray(body_ids), masses.cpu().double().numpy())

    def write_joint_stiffness_and_damping_to_sim(self, stiffness: torch.Tensor, damping: torch.Tensor,
                                                 joint_ids: Sequence[int], env_ids: torch.Tensor | None = None) -> None:
        """PhysX: ``write_joint_stiffness_to_sim`` + ``write_joint_damping_to_sim`` (the servo's kp, kv)."""
        self.backend.set_gains(self._ids(env_ids), np.asarray(joint_ids), stiffness.cpu().double().numpy(),
                               damping.cpu().double().numpy())

    def write_joint_armature_to_sim(self, armature: torch.Tensor, joint_ids: Sequence[int],
                                    env_ids: torch.Tensor | None = None) -> None:
        self.backend.set_armature(self._ids(env_ids), np.asarray(joint_ids), armature.cpu().double().numpy())

    def write_joint_viscous_friction_coefficient_to_sim(self, damping: torch.Tensor, joint_ids: Sequence[int],
                                                        env_ids: torch.Tensor | None = None) -> None:
        """Passive joint damping (N m s/rad)."""
        self.backend.set_damping(self._ids(env_ids), np.asarray(joint_ids), damping.cpu().double().numpy())

    def write_joint_friction_coefficient_to_sim(self, friction: torch.Tensor, joint_ids: Sequence[int],
                                                env_ids: torch.Tensor | None = None) -> None:
        """Coulomb joint friction (N m)."""
        self.backend.set_friction(self._ids(env_ids), np.asarray(joint_ids), friction.cpu().double().numpy())

    def write_joint_calibration_offset_to_sim(self, offset: torch.Tensor, joint_ids: Sequence[int],
                                              env_ids: torch.Tensor | None = None) -> None:
        """Servo zero error: the joint settles at target + offset and reads position - offset."""
        self.backend.set_calibration_offset(self._ids(env_ids), np.asarray(joint_ids), offset.cpu().double().numpy())

    def _ids(self, env_ids: torch.Tensor | None) -> np.ndarray:
        return self._all if env_ids is None else env_ids.cpu().numpy()
