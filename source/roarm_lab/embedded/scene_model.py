"""The embedded runtime's MuJoCo model, composed from the scene config's entities (as mjlab composes an MjSpec).

A scene names its entities as Isaac Lab's does: one articulation (its ``spawn`` a USD file), static cuboids
(``AssetBaseCfg``: the table) and free rigid bodies (``RigidObjectCfg``: a cube). The articulation's MuJoCo model
comes from the builder registered for its USD file (``register_articulation``: the assets package registers the
arm's, so this runtime imports no robot); the rest are added here from their config, so a task adds an object by
naming it in its scene and nothing in the runtime changes.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from roarm_lab.embedded.cfg import ArticulationCfg, AssetBaseCfg, CuboidCfg, InteractiveSceneCfg, RigidObjectCfg

OBSTACLE_CONTYPE = 1
"""Static obstacles collide as ``contype`` 1 / ``conaffinity`` 0, the links that can reach them the other way
round; free objects carry both bits, so they touch obstacles, links and each other."""

DEFAULT_DENSITY = 1000.0
_ARTICULATIONS: dict[str, str] = {}


def register_articulation(usd_path: str | Path, builder: str) -> None:
    """Name the MuJoCo builder (``"module:function"``, taking ``physics_dt``) of an articulation's USD file.

    A string, not a callable: the config that names the USD file stays data (an override can only pick among
    registered models)."""
    _ARTICULATIONS[str(Path(usd_path).resolve())] = builder


def _articulation_spec(spawn: Any, physics_dt: float) -> mujoco.MjSpec:
    path = getattr(spawn, "usd_path", None)
    key = str(Path(path).resolve()) if path else None
    if key not in _ARTICULATIONS:
        raise ValueError(f"the embedded runtime has no MuJoCo model for the articulation spawned from {path!r}; "
                         f"models it knows: {sorted(_ARTICULATIONS) or 'none (import roarm_lab.assets)'}")
    module, name = _ARTICULATIONS[key].split(":")
    return getattr(importlib.import_module(module), name)(physics_dt)


@dataclass
class SceneModel:
    """The composed model and where each entity lives in it."""

    spec: mujoco.MjSpec
    articulation: str
    joint_names: list[str]
    link_names: list[str]
    """The articulation's bodies, root first (MuJoCo body ids 1..)."""
    frame_names: list[str]
    """The articulation's sites (frames welded to a link, such as the hand's TCP)."""
    objects: dict[str, str] = field(default_factory=dict)
    """Rigid object entity -> its MuJoCo body (and free joint ``<name>_root``, geom ``<name>``)."""


def scene_entities(scene: InteractiveSceneCfg) -> list[tuple[str, Any]]:
    """(name, config) of every entity of a scene config, in declaration order."""
    skip = {f.name for f in dataclasses.fields(InteractiveSceneCfg)}
    return [(name, value) for name, value in vars(scene).items()
            if name not in skip and isinstance(value, AssetBaseCfg)]


def _wxyz(rot_xyzw: tuple[float, float, float, float]) -> list[float]:
    x, y, z, w = rot_xyzw
    return [w, x, y, z]


def _rgba(spawn: CuboidCfg) -> list[float]:
    colour = spawn.visual_material.diffuse_color if spawn.visual_material is not None else (0.6, 0.6, 0.6)
    return [*colour, 1.0]


def _cuboid(body: Any, name: str, spawn: Any) -> Any:
    if not isinstance(spawn, CuboidCfg):
        raise ValueError(f"entity '{name}': the embedded runtime spawns cuboids (CuboidCfg), not "
                         f"{type(spawn).__name__}")
    geom = body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=[s / 2 for s in spawn.size],
                         rgba=_rgba(spawn))
    if spawn.physics_material is not None:
        geom.friction = [spawn.physics_material.static_friction, 0.005, 0.0001]
    return geom


def compose_scene(scene: InteractiveSceneCfg, physics_dt: float) -> SceneModel:
    """The MjSpec of one environment of ``scene``: the articulation, then static cuboids and free bodies."""
    entities = scene_entities(scene)
    robots = [(n, c) for n, c in entities if isinstance(c, ArticulationCfg)]
    if len(robots) != 1:
        raise ValueError(f"the embedded runtime simulates one articulation per scene; this scene has "
                         f"{[n for n, _ in robots] or 'none'}")
    robot_name, robot = robots[0]
    spec = _articulation_spec(robot.spawn, physics_dt)
    compiled = spec.compile()
    root = spec.body(compiled.body(1).name)
    root.pos = list(robot.init_state.pos)
    root.quat = _wxyz(robot.init_state.rot)
    model = SceneModel(spec=spec, articulation=robot_name,
                       joint_names=[compiled.joint(i).name for i in range(compiled.njnt)],
                       link_names=[compiled.body(i).name for i in range(1, compiled.nbody)],
                       frame_names=[compiled.site(i).name for i in range(compiled.nsite)])
    key_qpos = list(compiled.key_qpos[0]) if compiled.nkey else list(compiled.qpos0)
    for name, cfg in entities:
        if cfg is robot:
            continue
        if cfg.spawn is None:
            continue  # a prim Isaac Lab places (lights, ground) with nothing to simulate here
        pos, quat = list(cfg.init_state.pos), _wxyz(cfg.init_state.rot)
        if isinstance(cfg, RigidObjectCfg):
            body = spec.worldbody.add_body(name=name, pos=pos, quat=quat)
            body.add_freejoint(name=f"{name}_root")
            geom = _cuboid(body, name, cfg.spawn)
            mass_props = cfg.spawn.mass_props
            if mass_props is not None and mass_props.mass is not None:
                geom.mass = float(mass_props.mass)
            else:
                geom.density = float(mass_props.density if mass_props is not None and mass_props.density
                                     else DEFAULT_DENSITY)
            geom.contype, geom.conaffinity = OBSTACLE_CONTYPE, OBSTACLE_CONTYPE
            rigid = cfg.spawn.rigid_props
            if rigid is not None and rigid.disable_gravity:
                body.gravcomp = 1.0
            model.objects[name] = name
            key_qpos += pos + quat
        elif type(cfg) is AssetBaseCfg:
            geom = _cuboid(spec.worldbody, name, cfg.spawn)
            geom.pos, geom.quat = pos, quat
            geom.contype, geom.conaffinity = OBSTACLE_CONTYPE, 0
        else:
            raise ValueError(f"entity '{name}' is a {type(cfg).__name__}; the embedded runtime composes one "
                             "ArticulationCfg, AssetBaseCfg cuboids and RigidObjectCfg cuboids")
    if compiled.nkey:
        spec.keys[0].qpos = np.asarray(key_qpos)
    return model
