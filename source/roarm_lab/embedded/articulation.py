"""The robot as MDP terms see it: Isaac Lab 3's ``Articulation`` / ``ArticulationData`` API over a backend.

Terms read ``asset.data.joint_pos.torch``, ``.body_pos_w.torch``, ``.body_mass.torch`` ... and change the
robot through the ``*_index`` writers (``write_joint_position_to_sim_index``, ``set_masses_index``, ...)
with Isaac Lab 3's keyword arguments, exactly as they would on Isaac Lab; only this class knows a physics
backend is underneath. Writers take partial data: values of shape ``(len(env_ids), len(joint_ids))``.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import torch

from roarm_lab.embedded.backends.base import PhysicsBackend

Ids = Sequence[int] | torch.Tensor | slice | None


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


def index_array(ids: Ids, count: int) -> np.ndarray:
    """Any of Isaac Lab's index forms (None, a slice, a list, a tensor) as a numpy index array."""
    if ids is None:
        return np.arange(count)
    if isinstance(ids, slice):
        return np.arange(count)[ids]
    if isinstance(ids, torch.Tensor):
        return ids.detach().cpu().numpy().astype(np.int64).reshape(-1)
    return np.asarray(list(ids), dtype=np.int64)


class TorchArray:
    """A torch tensor behind Isaac Lab 3's ``ProxyArray`` accessor: ``data.joint_pos.torch``.

    Like a ``ProxyArray``'s cached view, the tensor is the live buffer: writers update it in place.
    """

    __slots__ = ("torch",)

    def __init__(self, tensor: torch.Tensor):
        self.torch = tensor

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.torch.shape)

    def __repr__(self) -> str:
        return f"TorchArray(shape={self.shape})"


class ArticulationData:
    """The robot's state and parameters as ``TorchArray`` s, refreshed once per control step."""

    def __init__(self, backend: PhysicsBackend, device: str, default_joint_pos: Sequence[float],
                 root_pos: Sequence[float], velocity_limits: Sequence[float]):
        n, nj, nb = backend.num_envs, len(backend.joint_names), len(backend.body_names)
        f32 = dict(device=device, dtype=torch.float32)

        def arr(value: Any, shape: tuple[int, ...]) -> TorchArray:
            return TorchArray(torch.as_tensor(np.asarray(value), **f32).expand(*shape).clone())

        self.joint_names = list(backend.joint_names)
        self.body_names = list(backend.body_names)
        self.joint_pos = arr(0.0, (n, nj))
        self.joint_vel = arr(0.0, (n, nj))
        self.default_joint_pos = arr(default_joint_pos, (n, nj))
        self.default_joint_vel = arr(0.0, (n, nj))
        self.joint_pos_limits = arr(backend.joint_limits, (n, nj, 2))
        self.soft_joint_pos_limits = arr(backend.joint_limits, (n, nj, 2))
        self.soft_joint_vel_limits = arr(velocity_limits, (n, nj))
        self.joint_pos_target = arr(default_joint_pos, (n, nj))
        self.body_pos_w = arr(0.0, (n, nb, 3))
        self.root_pos_w = arr(root_pos, (n, 3))
        self.root_quat_w = arr([0.0, 0.0, 0.0, 1.0], (n, 4))  # x, y, z, w (Isaac Lab 3)
        inertia = np.zeros((nb, 9))
        inertia[:, [0, 4, 8]] = backend.body_inertia_diag()
        self.body_mass = arr(backend.body_mass(), (n, nb))
        self.body_inertia = arr(inertia, (n, nb, 9))
        self.joint_stiffness = arr(backend.default_kp, (n, nj))
        self.joint_damping = arr(backend.default_kv, (n, nj))
        self.joint_armature = arr(backend.default_armature, (n, nj))
        self.joint_friction_coeff = arr(backend.default_friction, (n, nj))
        self.joint_viscous_friction_coeff = arr(backend.default_damping, (n, nj))


class TargetCommand:
    """Isaac Lab 3's ``articulation.actuators.target_command``: the drives' position setpoints."""

    def __init__(self, position: TorchArray, writer: Any):
        self.position = position
        self._writer = writer

    def set_position_index(self, *, value: torch.Tensor, joint_ids: Ids = None, env_ids: Ids = None) -> None:
        """Setpoints (held until ``write_data_to_sim``); partial data ``(len(env_ids), len(joint_ids))``."""
        if env_ids is None:  # the action term's every-step call: one indexed copy
            self.position.torch[:, slice(None) if joint_ids is None else joint_ids] = value
            return
        self._writer(self.position, value, env_ids, joint_ids)


class Actuators:
    """Isaac Lab 3's ``articulation.actuators``: here only the command targets (the drives are MuJoCo's)."""

    def __init__(self, target_command: TargetCommand):
        self.target_command = target_command


class Articulation:
    """The articulated robot of one scene entry."""

    def __init__(self, backend: PhysicsBackend, device: str, default_joint_pos: Sequence[float],
                 root_pos: Sequence[float], velocity_limits: Sequence[float]):
        self.backend = backend
        self.device = device
        self.num_instances = backend.num_envs
        self.data = ArticulationData(backend, device, default_joint_pos, root_pos, velocity_limits)
        d = self.data
        # numpy views of the buffers the engine reads and writes: one call copies the state, one writes reset rows
        self._state_views = tuple(b.torch.numpy() for b in (d.joint_pos, d.joint_vel, d.body_pos_w))
        self._joint_views = tuple(b.torch.numpy() for b in (
            d.joint_stiffness, d.joint_damping, d.joint_armature, d.joint_friction_coeff,
            d.joint_viscous_friction_coeff, d.joint_pos, d.joint_vel))
        self.actuators = Actuators(TargetCommand(
            self.data.joint_pos_target, lambda buf, v, env_ids, ids: self._write(buf, v, env_ids, ids, self.num_joints)))
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
        """Copy the engine state into the torch buffers."""
        self.backend.read_articulation(*self._state_views)

    def reset(self, env_ids: Ids = None) -> None:
        pass

    def _rows_cols(self, env_ids: Ids, ids: Ids, count: int) -> tuple[np.ndarray, np.ndarray]:
        return index_array(env_ids, self.num_instances), index_array(ids, count)

    def _write(self, buffer: TorchArray, values: Any, env_ids: Ids, ids: Ids, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Store partial ``values`` into ``buffer`` at (env_ids, ids); return the numpy indices for the backend."""
        rows, cols = self._rows_cols(env_ids, ids, count)
        value = torch.as_tensor(values, dtype=torch.float32, device=self.device)
        buffer.torch[torch.from_numpy(rows)[:, None], torch.from_numpy(cols)] = value.expand(len(rows), len(cols))
        return rows, cols

    def write_data_to_sim(self) -> None:
        """Push servo targets and the held friction torque into the engine."""
        self.backend.set_targets(self.data.joint_pos_target.torch.cpu().numpy())
        self.backend.apply_joint_friction()

    def write_rows_to_sim(self, rows: np.ndarray, fields: dict[str, Any]) -> None:
        """Push some environments' data buffers into the engine: what the writers below do one field at a time,
        for values already stored in ``data`` (the fused reset events write them there). ``fields`` maps
        ``gains``, ``armature``, ``friction``, ``viscous_friction`` to the joints written (None: all), and
        ``joint_vel``, ``joint_pos`` (whole rows, as the writers write them; then the kinematics) to None."""
        self.backend.write_joint_rows(rows, fields, *self._joint_views)
        if "joint_pos" in fields:
            at = torch.from_numpy(rows)
            self.data.body_pos_w.torch[at] = torch.from_numpy(self.backend.frame_positions(rows)).float()

    def write_joint_position_to_sim_index(self, *, position: torch.Tensor, joint_ids: Ids = None,
                                          env_ids: Ids = None) -> None:
        rows, _ = self._write(self.data.joint_pos, position, env_ids, joint_ids, self.num_joints)
        self.backend.write_joint_positions(rows, self.data.joint_pos.torch[rows].double().numpy())
        self.data.body_pos_w.torch[rows] = torch.from_numpy(self.backend.frame_positions(rows)).float()

    def write_joint_velocity_to_sim_index(self, *, velocity: torch.Tensor, joint_ids: Ids = None,
                                          env_ids: Ids = None) -> None:
        rows, _ = self._write(self.data.joint_vel, velocity, env_ids, joint_ids, self.num_joints)
        self.backend.write_joint_velocities(rows, self.data.joint_vel.torch[rows].double().numpy())

    # ------------------------------------------------------------------ engine parameters (Isaac Lab 3's writers)
    def write_joint_stiffness_to_sim_index(self, *, stiffness: Any, joint_ids: Ids = None, env_ids: Ids = None) -> None:
        """The servo's position gain kp (N m/rad)."""
        rows, cols = self._write(self.data.joint_stiffness, stiffness, env_ids, joint_ids, self.num_joints)
        self.backend.set_gains(rows, cols, self.data.joint_stiffness.torch[rows][:, cols].double().numpy(),
                               self.data.joint_damping.torch[rows][:, cols].double().numpy())

    def write_joint_damping_to_sim_index(self, *, damping: Any, joint_ids: Ids = None, env_ids: Ids = None) -> None:
        """The servo's velocity gain kv (N m s/rad)."""
        rows, cols = self._write(self.data.joint_damping, damping, env_ids, joint_ids, self.num_joints)
        self.backend.set_gains(rows, cols, self.data.joint_stiffness.torch[rows][:, cols].double().numpy(),
                               self.data.joint_damping.torch[rows][:, cols].double().numpy())

    def write_joint_armature_to_sim_index(self, *, armature: Any, joint_ids: Ids = None, env_ids: Ids = None) -> None:
        rows, cols = self._write(self.data.joint_armature, armature, env_ids, joint_ids, self.num_joints)
        self.backend.set_armature(rows, cols, self.data.joint_armature.torch[rows][:, cols].double().numpy())

    def write_joint_friction_coefficient_to_sim_index(self, *, joint_friction_coeff: Any,
                                                      joint_dynamic_friction_coeff: Any = None,
                                                      joint_viscous_friction_coeff: Any = None,
                                                      joint_ids: Ids = None, env_ids: Ids = None) -> None:
        """Coulomb friction (N m, as Newton reads it) and, if given, passive viscous damping (N m s/rad)."""
        if joint_dynamic_friction_coeff is not None:
            raise ValueError("the embedded runtime has no dynamic joint friction (Newton neither): leave it None")
        rows, cols = self._write(self.data.joint_friction_coeff, joint_friction_coeff, env_ids, joint_ids,
                                 self.num_joints)
        self.backend.set_friction(rows, cols, self.data.joint_friction_coeff.torch[rows][:, cols].double().numpy())
        if joint_viscous_friction_coeff is not None:
            self.write_joint_viscous_friction_coefficient_to_sim_index(
                joint_viscous_friction_coeff=joint_viscous_friction_coeff, joint_ids=joint_ids, env_ids=env_ids)

    def write_joint_viscous_friction_coefficient_to_sim_index(self, *, joint_viscous_friction_coeff: Any,
                                                              joint_ids: Ids = None, env_ids: Ids = None) -> None:
        rows, cols = self._write(self.data.joint_viscous_friction_coeff, joint_viscous_friction_coeff, env_ids,
                                 joint_ids, self.num_joints)
        self.backend.set_damping(rows, cols, self.data.joint_viscous_friction_coeff.torch[rows][:, cols].double().numpy())

    def set_masses_index(self, *, masses: Any, body_ids: Ids = None, env_ids: Ids = None) -> None:
        """Body masses (kg). As in Isaac Lab 3 the inertia is left alone: set it with ``set_inertias_index``."""
        rows, cols = self._write(self.data.body_mass, masses, env_ids, body_ids, self.num_bodies)
        self.backend.set_masses(rows, self._massive(cols), self.data.body_mass.torch[rows][:, cols].double().numpy())

    def set_inertias_index(self, *, inertias: Any, body_ids: Ids = None, env_ids: Ids = None) -> None:
        """Body inertia tensors (N, B, 9, row-major, about the centre of mass in the body's inertia frame).

        MuJoCo stores the principal moments only: the off-diagonal terms must be zero.
        """
        rows, cols = self._rows_cols(env_ids, body_ids, self.num_bodies)
        value = torch.as_tensor(inertias, dtype=torch.float32).reshape(len(rows), len(cols), 9)
        if bool((value[..., [1, 2, 3, 5, 6, 7]].abs() > 1e-12).any()):
            raise ValueError("the embedded runtime takes principal inertias: the off-diagonal terms must be zero")
        self.data.body_inertia.torch[torch.from_numpy(rows)[:, None], torch.from_numpy(cols)] = value
        self.backend.set_inertias(rows, self._massive(cols), value[..., [0, 4, 8]].double().numpy())

    def _massive(self, cols: np.ndarray) -> np.ndarray:
        frames = [self.body_names[c] for c in cols if c >= self.backend.num_mass_bodies]
        if frames:
            raise ValueError(f"{frames} are frames welded to a link (no mass of their own here); "
                             f"randomize the links: {self.body_names[:self.backend.num_mass_bodies]}")
        return cols
