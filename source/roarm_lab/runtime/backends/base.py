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
    calibration_offset: np.ndarray
    joint_limits: np.ndarray
    default_mass: np.ndarray
    default_armature: np.ndarray
    default_damping: np.ndarray
    default_kp: np.ndarray
    default_kv: np.ndarray
    default_friction: np.ndarray

    @abstractmethod
    def step(self, nstep: int) -> np.ndarray:
        """Advance every simulation; return a bool mask of those that diverged (already reset)."""

    @abstractmethod
    def frame_positions(self) -> np.ndarray: ...

    @abstractmethod
    def write_joint_state(self, env_ids: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None: ...

    @abstractmethod
    def set_targets(self, targets: np.ndarray) -> None: ...

    @abstractmethod
    def apply_joint_friction(self) -> None: ...

    @abstractmethod
    def set_masses(self, env_ids: np.ndarray, body_ids: np.ndarray, masses: np.ndarray) -> None: ...

    @abstractmethod
    def set_gains(self, env_ids: np.ndarray, joint_ids: np.ndarray, kp: np.ndarray, kv: np.ndarray) -> None: ...

    @abstractmethod
    def set_armature(self, env_ids: np.ndarray, joint_ids: np.ndarray, armature: np.ndarray) -> None: ...

    @abstractmethod
    def set_damping(self, env_ids: np.ndarray, joint_ids: np.ndarray, damping: np.ndarray) -> None: ...

    @abstractmethod
    def set_friction(self, env_ids: np.ndarray, joint_ids: np.ndarray, friction: np.ndarray) -> None: ...

    @abstractmethod
    def set_calibration_offset(self, env_ids: np.ndarray, joint_ids: np.ndarray, offset: np.ndarray) -> None: ...
