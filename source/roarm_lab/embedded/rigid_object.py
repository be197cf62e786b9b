"""A free rigid body as MDP terms see it: Isaac Lab 3's ``RigidObject`` / ``RigidObjectData`` API over a backend.

Terms read ``obj.data.root_pos_w.torch`` (world frame, quaternions x y z w as Isaac Lab 3) and write through
``write_root_pose_to_sim_index`` / ``write_root_velocity_to_sim_index`` / ``set_masses_index`` with Isaac Lab 3's
keyword arguments; the MuJoCo free joint behind it (w x y z, angular velocity in the body frame) stays here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from roarm_lab.embedded.articulation import Ids, TorchArray, _find, index_array


def _xyzw(wxyz: np.ndarray) -> np.ndarray:
    return wxyz[..., [1, 2, 3, 0]]


def _wxyz(xyzw: np.ndarray) -> np.ndarray:
    return xyzw[..., [3, 0, 1, 2]]


class RigidObjectData:
    """The body's state, refreshed once per control step, and its defaults (the config's initial state)."""

    def __init__(self, num_envs: int, device: str, init_state: Any, mass: float, inertia_diag: np.ndarray):
        f32 = dict(device=device, dtype=torch.float32)

        def arr(value: Any, shape: tuple[int, ...]) -> TorchArray:
            return TorchArray(torch.as_tensor(np.asarray(value, dtype=np.float64), **f32).expand(*shape).clone())

        n = num_envs
        self.root_pos_w = arr(0.0, (n, 3))
        self.root_quat_w = arr([0.0, 0.0, 0.0, 1.0], (n, 4))
        self.root_lin_vel_w = arr(0.0, (n, 3))
        self.root_ang_vel_w = arr(0.0, (n, 3))
        self.default_root_pose = arr(list(init_state.pos) + list(init_state.rot), (n, 7))
        self.default_root_vel = arr(list(init_state.lin_vel) + list(init_state.ang_vel), (n, 6))
        inertia = np.zeros(9)
        inertia[[0, 4, 8]] = inertia_diag
        self.body_mass = arr([mass], (n, 1))
        self.body_inertia = arr([inertia], (n, 1, 9))

    @property
    def root_pose_w(self) -> TorchArray:
        return TorchArray(torch.cat([self.root_pos_w.torch, self.root_quat_w.torch], dim=-1))

    @property
    def root_vel_w(self) -> TorchArray:
        return TorchArray(torch.cat([self.root_lin_vel_w.torch, self.root_ang_vel_w.torch], dim=-1))


class RigidObject:
    """One free body per environment (the scene entry ``name``)."""

    def __init__(self, backend: Any, name: str, device: str, init_state: Any):
        self.backend = backend
        self.name = name
        self.device = device
        self.num_instances = backend.num_envs
        mass, inertia = backend.object_mass(name)
        self.data = RigidObjectData(backend.num_envs, device, init_state, mass, inertia)
        n = backend.num_envs
        self.pending_pose = torch.zeros(n, 7, device=device)
        """Poses (x y z, quaternion x y z w) the fused reset events stage for ``write_rows_to_sim``."""
        self.pending_velocity = torch.zeros(n, 6, device=device)
        """Velocities (linear, angular, world frame) staged likewise."""
        self.pending_rows = torch.zeros(n, dtype=torch.bool, device=device)
        """The environments whose pose and velocity are staged (``write_rows_to_sim`` sends those, and clears)."""
        self.update(0.0)

    @property
    def body_names(self) -> list[str]:
        return [self.name]

    @property
    def num_bodies(self) -> int:
        return 1

    def find_bodies(self, name_keys: str | Sequence[str], preserve_order: bool = False) -> tuple[list[int], list[str]]:
        return _find(self.body_names, name_keys, preserve_order, "body")

    def update(self, dt: float) -> None:
        """Copy the engine state into the torch buffers."""
        pos, quat, lin, ang = self.backend.object_state(self.name)
        d = self.data
        d.root_pos_w.torch.copy_(torch.from_numpy(pos))
        d.root_quat_w.torch.copy_(torch.from_numpy(_xyzw(quat)))
        d.root_lin_vel_w.torch.copy_(torch.from_numpy(lin))
        d.root_ang_vel_w.torch.copy_(torch.from_numpy(ang))

    def reset(self, env_ids: Ids = None) -> None:
        pass

    def _rows(self, env_ids: Ids) -> np.ndarray:
        return index_array(env_ids, self.num_instances)

    def write_rows_to_sim(self, rows: np.ndarray, fields: Sequence[str]) -> None:
        """Send some environments' staged values to the engine, as the writers below do: ``pose`` and ``velocity``
        from ``pending_pose`` / ``pending_velocity``, ``mass`` (and inertia) from ``data``."""
        if "mass" in fields:
            self._write_mass(rows)
        staged = rows[self.pending_rows.numpy()[rows]]
        if len(staged) == 0 or not ("pose" in fields or "velocity" in fields):
            return
        at = torch.from_numpy(staged)
        if "pose" in fields:
            pose = self.pending_pose[at].double().numpy()
            quat = pose[:, 3:] / np.linalg.norm(pose[:, 3:], axis=1, keepdims=True)
            self.backend.write_object_pose(self.name, staged, pose[:, :3], _wxyz(quat))
        if "velocity" in fields:
            velocity = self.pending_velocity[at].double().numpy()
            self.backend.write_object_velocity(self.name, staged, velocity[:, :3], velocity[:, 3:])
        self.pending_rows[at] = False
        self.update(0.0)

    def write_root_pose_to_sim_index(self, *, root_pose: Any, env_ids: Ids = None, skip_forward: bool = False) -> None:
        """Position and quaternion (x, y, z, w) in the world frame, (len(env_ids), 7)."""
        rows = self._rows(env_ids)
        pose = torch.as_tensor(root_pose, dtype=torch.float64).reshape(len(rows), 7).cpu().numpy()
        quat = pose[:, 3:] / np.linalg.norm(pose[:, 3:], axis=1, keepdims=True)
        self.backend.write_object_pose(self.name, rows, pose[:, :3], _wxyz(quat))
        self.update(0.0)

    def write_root_velocity_to_sim_index(self, *, root_velocity: Any, env_ids: Ids = None,
                                         skip_forward: bool = False) -> None:
        """Linear and angular velocity in the world frame, (len(env_ids), 6)."""
        rows = self._rows(env_ids)
        vel = torch.as_tensor(root_velocity, dtype=torch.float64).reshape(len(rows), 6).cpu().numpy()
        self.backend.write_object_velocity(self.name, rows, vel[:, :3], vel[:, 3:])
        self.update(0.0)

    def set_masses_index(self, *, masses: Any, body_ids: Ids = None, env_ids: Ids = None) -> None:
        """The body's mass (kg), (len(env_ids), 1); its inertia is left alone, as in Isaac Lab 3."""
        rows = self._rows(env_ids)
        value = torch.as_tensor(masses, dtype=torch.float32).reshape(len(rows), 1)
        self.data.body_mass.torch[torch.from_numpy(rows)] = value
        self._write_mass(rows)

    def set_inertias_index(self, *, inertias: Any, body_ids: Ids = None, env_ids: Ids = None) -> None:
        """Inertia tensors (len(env_ids), 1, 9); MuJoCo takes the principal moments (off-diagonals must be 0)."""
        rows = self._rows(env_ids)
        value = torch.as_tensor(inertias, dtype=torch.float32).reshape(len(rows), 1, 9)
        if bool((value[..., [1, 2, 3, 5, 6, 7]].abs() > 1e-12).any()):
            raise ValueError("the embedded runtime takes principal inertias: the off-diagonal terms must be zero")
        self.data.body_inertia.torch[torch.from_numpy(rows)] = value
        self._write_mass(rows)

    def _write_mass(self, rows: np.ndarray) -> None:
        mass = self.data.body_mass.torch[rows, 0].double().numpy()
        inertia = self.data.body_inertia.torch[rows, 0][:, [0, 4, 8]].double().numpy()
        self.backend.set_object_mass(self.name, rows, mass, inertia)
