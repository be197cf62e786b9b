"""Events Isaac Lab implements per physics backend or on the USD stage, not through the asset API: the embedded
runtime's MuJoCo implementations under Isaac Lab's term names and parameters.

``randomize_rigid_body_material`` (PhysX materials, Newton's per-shape ``mu`` there) and
``randomize_rigid_body_scale`` (a USD edit before the simulation starts there; here the geom's size, its bounding
sphere and box, per environment, at start-up). A task names ``mdp.<term>`` and gets Isaac Lab's own term there,
this one here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from roarm_lab.embedded.managers import ManagerTermBase
from roarm_lab.embedded.rigid_object import RigidObject


class randomize_rigid_body_material(ManagerTermBase):
    """A rigid object's sliding friction, drawn per environment from ``static_friction_range`` (MuJoCo has one
    coefficient and takes the larger of a contact pair's: the jaws' and the table's are 1.0 and 1.0 by default,
    so lower the object's below theirs only to make it more slippery than they are)."""

    def __init__(self, cfg: Any, env: Any):
        super().__init__(cfg, env)
        asset = env.scene[cfg.params["asset_cfg"].name]
        if not isinstance(asset, RigidObject):
            raise ValueError(f"randomize_rigid_body_material: the embedded runtime randomizes rigid objects' "
                             f"friction; '{cfg.params['asset_cfg'].name}' is a {type(asset).__name__}")
        self._asset = asset

    def __call__(self, env: Any, env_ids: Any, static_friction_range: tuple[float, float],
                 dynamic_friction_range: tuple[float, float], restitution_range: tuple[float, float],
                 num_buckets: int, asset_cfg: Any, make_consistent: bool = False) -> None:
        ids = torch.arange(env.num_envs) if env_ids is None else torch.as_tensor(env_ids).long().reshape(-1)
        friction = torch.empty(len(ids)).uniform_(*static_friction_range)
        self._asset.backend.set_object_friction(self._asset.name, ids.numpy(), friction.double().numpy())


def randomize_rigid_body_scale(env: Any, env_ids: Any, scale_range: tuple[float, float] | dict[str, tuple[float, float]],
                               asset_cfg: Any, relative_child_path: str | None = None) -> None:
    """Scale a rigid object's box per environment (one factor, or one per axis ``x y z``), its mass unchanged.

    Use it at start-up (Isaac Lab allows only that: it edits the USD stage); an object's resting height scales
    with it, which a task's reset and success heights must allow for."""
    if relative_child_path is not None:
        raise ValueError("randomize_rigid_body_scale: the embedded runtime's objects are one box (no child path)")
    asset = env.scene[asset_cfg.name]
    if not isinstance(asset, RigidObject):
        raise ValueError(f"randomize_rigid_body_scale: '{asset_cfg.name}' is a {type(asset).__name__}, not a rigid "
                         "object")
    ids = np.arange(env.num_envs) if env_ids is None else torch.as_tensor(env_ids).long().reshape(-1).cpu().numpy()
    ranges = ({"x": scale_range, "y": scale_range, "z": scale_range} if isinstance(scale_range, tuple)
              else {k: scale_range.get(k, (1.0, 1.0)) for k in "xyz"})
    if isinstance(scale_range, tuple):
        factor = np.random.uniform(*scale_range, size=(len(ids), 1)).repeat(3, axis=1)
    else:
        factor = np.stack([np.random.uniform(*ranges[k], size=len(ids)) for k in "xyz"], axis=1)
    asset.backend.scale_object(asset.name, ids, factor)
