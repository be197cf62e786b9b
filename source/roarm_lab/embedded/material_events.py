"""Contact-material randomization on the embedded runtime, under Isaac Lab's term name and parameters.

Isaac Lab implements ``randomize_rigid_body_material`` per physics backend (PhysX materials, Newton's per-shape
``mu``), not through the asset API; this is the MuJoCo backend's implementation. A task names
``mdp.randomize_rigid_body_material`` and gets Isaac Lab's own class there, this one here.
"""

from __future__ import annotations

from typing import Any

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
