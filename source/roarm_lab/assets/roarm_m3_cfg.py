"""The RoArm-M3 as a scene asset (Isaac Lab's ``ArticulationCfg``), built from the joint table, and its table."""

from __future__ import annotations

from roarm_lab.assets.joint_table import BASE_HEIGHT_M, JOINTS
from roarm_lab.assets.usd import USD_PATH
from roarm_lab.isaaclab_api import (ISAACLAB, ArticulationCfg, AssetBaseCfg, UsdPhysicsCollisionCfg, CuboidCfg, ImplicitActuatorCfg,
                              PreviewSurfaceCfg, UsdFileCfg)

ROARM_M3_CFG = ArticulationCfg(
    prim_path="{ENV_REGEX_NS}/Robot",
    spawn=UsdFileCfg(usd_path=str(USD_PATH)),
    init_state=ArticulationCfg.InitialStateCfg(
        pos=(0.0, 0.0, BASE_HEIGHT_M), joint_pos={j.name: j.home for j in JOINTS}),
    actuators={
        "servos": ImplicitActuatorCfg(
            joint_names_expr=[j.name for j in JOINTS],
            joint_effort_limit={j.name: j.effort for j in JOINTS},
            joint_velocity_limit={j.name: j.velocity for j in JOINTS},
            stiffness={j.name: j.kp for j in JOINTS},
            damping={j.name: j.kv for j in JOINTS},
            armature={j.name: j.armature for j in JOINTS},
            friction={j.name: j.friction for j in JOINTS},
            viscous_friction={j.name: j.damping for j in JOINTS},
        )
    },
)
"""Servo-like implicit PD drives with the joint table's gains; the base sits BASE_HEIGHT_M above the table.

Isaac Lab spawns ``data/roarm_m3.usda`` (``assets/usd.py``); the embedded runtime builds the same arm from the
URDF with MuJoCo (``assets/mjcf.py``). Both are written from the joint and link tables.
"""

if not ISAACLAB:  # the embedded runtime builds the arm spawned from this USD file with MuJoCo, from the tables
    from roarm_lab.embedded.scene_model import register_articulation

    register_articulation(USD_PATH, "roarm_lab.assets.mjcf:build_arm_spec")

TABLE_SIZE_M = (0.8, 0.8, 0.05)

TABLE_CFG = AssetBaseCfg(
    prim_path="{ENV_REGEX_NS}/Table",
    spawn=CuboidCfg(size=TABLE_SIZE_M, collision_props=UsdPhysicsCollisionCfg(),
                    visual_material=PreviewSurfaceCfg(diffuse_color=(0.35, 0.38, 0.42))),
    init_state=AssetBaseCfg.InitialStateCfg(pos=(0.0, 0.0, -TABLE_SIZE_M[2] / 2)),
)
"""The table the arm stands on, its top at z = 0 (the embedded model's table plane)."""
