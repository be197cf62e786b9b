"""The RoArm-M3 as a scene asset (Isaac Lab's ``ArticulationCfg``), built from the joint table."""

from __future__ import annotations

from roarm_lab.assets.joint_table import BASE_HEIGHT_M, JOINTS
from roarm_lab.assets.urdf import URDF_PATH
from roarm_lab.compat import ArticulationCfg, ImplicitActuatorCfg, UrdfFileCfg

ROARM_M3_CFG = ArticulationCfg(
    prim_path="{ENV_REGEX_NS}/Robot",
    spawn=UrdfFileCfg(asset_path=str(URDF_PATH), fix_base=True, merge_fixed_joints=False),
    init_state=ArticulationCfg.InitialStateCfg(
        pos=(0.0, 0.0, BASE_HEIGHT_M), joint_pos={j.name: j.home for j in JOINTS}),
    actuators={
        "servos": ImplicitActuatorCfg(
            joint_names_expr=[j.name for j in JOINTS],
            effort_limit_sim={j.name: j.effort for j in JOINTS},
            velocity_limit_sim={j.name: j.velocity for j in JOINTS},
            stiffness={j.name: j.kp for j in JOINTS},
            damping={j.name: j.kv for j in JOINTS},
            armature={j.name: j.armature for j in JOINTS},
            friction={j.name: j.friction for j in JOINTS},
        )
    },
)
"""Servo-like implicit PD drives with the joint table's gains; the base sits BASE_HEIGHT_M above the table."""
