"""The contract between the embedded runtime and a physics engine.

The MuJoCo C engine on CPU threads implements it today; a MuJoCo Warp (CUDA) backend would implement the
same methods on device arrays. Terms never see a backend: they go through the articulation, whose
engine-facing methods map one-to-one onto these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class PhysicsBackend(ABC):
    name: str
    num_envs: int
    physics_dt: float
    joint_names: list[str]
    body_names: list[str]
    qpos: np.ndarray
    qvel: np.ndarray
    joint_limits: np.ndarray
    num_mass_bodies: int
    """The first ``num_mass_bodies`` of ``body_names`` have mass; the rest are frames (``hand_tcp``)."""
    default_armature: np.ndarray
    default_damping: np.ndarray
    default_kp: np.ndarray
    default_kv: np.ndarray
    default_friction: np.ndarray

    def physics_report(self) -> dict[str, np.ndarray]:
        """Per simulation, what the engine knows beyond the state (contacts, energy), for rollout reports; a
        backend that knows none of it returns {}."""
        return {}

    @abstractmethod
    def step(self, nstep: int) -> np.ndarray:
        """Advance every simulation; return a bool mask of those that diverged (already reset)."""

    @abstractmethod
    def frame_positions(self, env_ids: np.ndarray | None = None) -> np.ndarray: ...

    @abstractmethod
    def write_joint_positions(self, env_ids: np.ndarray, qpos: np.ndarray) -> None:
        """Teleport the joints of some simulations and recompute their kinematics."""

    @abstractmethod
    def write_joint_velocities(self, env_ids: np.ndarray, qvel: np.ndarray) -> None:
        """Set joint velocities (the kinematics do not depend on them: nothing is recomputed)."""

    @abstractmethod
    def set_targets(self, targets: np.ndarray) -> None: ...

    def read_articulation(self, joint_pos: np.ndarray, joint_vel: np.ndarray, frames: np.ndarray) -> None:
        """Copy the articulation's state into (float32) buffers: joints, then link and frame positions."""
        joint_pos[:] = self.qpos
        joint_vel[:] = self.qvel
        frames[:] = self.frame_positions()

    def write_joint_rows(self, rows: np.ndarray, fields: dict[str, np.ndarray | None], stiffness: np.ndarray,
                         damping: np.ndarray, armature: np.ndarray, friction: np.ndarray, viscous: np.ndarray,
                         joint_pos: np.ndarray, joint_vel: np.ndarray) -> None:
        """Write some simulations' joint fields from (N, joints) buffers: ``fields`` maps ``gains``, ``armature``,
        ``friction``, ``viscous_friction``, ``joint_vel``, ``joint_pos`` to their joints (None: all); positions
        are written whole rows, then the kinematics recomputed."""
        every = np.arange(len(self.joint_names))

        def cols(field: str) -> np.ndarray:
            return every if fields[field] is None else np.asarray(fields[field])

        if "gains" in fields:
            c = cols("gains")
            self.set_gains(rows, c, stiffness[np.ix_(rows, c)], damping[np.ix_(rows, c)])
        if "armature" in fields:
            self.set_armature(rows, cols("armature"), armature[np.ix_(rows, cols("armature"))])
        if "friction" in fields:
            self.set_friction(rows, cols("friction"), friction[np.ix_(rows, cols("friction"))])
        if "viscous_friction" in fields:
            self.set_damping(rows, cols("viscous_friction"), viscous[np.ix_(rows, cols("viscous_friction"))])
        if "joint_vel" in fields:
            self.write_joint_velocities(rows, joint_vel[rows])
        if "joint_pos" in fields:
            self.write_joint_positions(rows, joint_pos[rows])

    @abstractmethod
    def apply_joint_friction(self) -> None: ...

    @abstractmethod
    def body_mass(self) -> np.ndarray:
        """Nominal masses of ``body_names`` (frames: 0)."""

    @abstractmethod
    def body_inertia_diag(self) -> np.ndarray:
        """Nominal principal inertias of ``body_names``, (nbody, 3) (frames: 0)."""

    @abstractmethod
    def set_masses(self, env_ids: np.ndarray, body_ids: np.ndarray, masses: np.ndarray) -> None: ...

    @abstractmethod
    def set_inertias(self, env_ids: np.ndarray, body_ids: np.ndarray, inertia_diag: np.ndarray) -> None: ...

    @abstractmethod
    def set_effort_limits(self, joint_ids: np.ndarray, limits: np.ndarray) -> None: ...

    @abstractmethod
    def set_gains(self, env_ids: np.ndarray, joint_ids: np.ndarray, kp: np.ndarray, kv: np.ndarray) -> None: ...

    @abstractmethod
    def set_armature(self, env_ids: np.ndarray, joint_ids: np.ndarray, armature: np.ndarray) -> None: ...

    @abstractmethod
    def set_damping(self, env_ids: np.ndarray, joint_ids: np.ndarray, damping: np.ndarray) -> None: ...

    @abstractmethod
    def set_friction(self, env_ids: np.ndarray, joint_ids: np.ndarray, friction: np.ndarray) -> None: ...

    # free rigid bodies of the scene (by entity name)
    @abstractmethod
    def object_state(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(position, quaternion w x y z, linear velocity, angular velocity), world frame, (N, .)."""

    @abstractmethod
    def write_object_pose(self, name: str, env_ids: np.ndarray, pos: np.ndarray, quat_wxyz: np.ndarray) -> None: ...

    @abstractmethod
    def write_object_velocity(self, name: str, env_ids: np.ndarray, lin_w: np.ndarray, ang_w: np.ndarray) -> None: ...

    @abstractmethod
    def object_mass(self, name: str) -> tuple[float, np.ndarray]:
        """Nominal mass and principal inertia."""

    @abstractmethod
    def set_object_mass(self, name: str, env_ids: np.ndarray, mass: np.ndarray, inertia_diag: np.ndarray) -> None: ...

    @abstractmethod
    def set_object_friction(self, name: str, env_ids: np.ndarray, friction: np.ndarray) -> None: ...

    @abstractmethod
    def scale_object(self, name: str, env_ids: np.ndarray, factor: np.ndarray) -> None: ...
