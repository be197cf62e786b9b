"""Compile the project's URDF into a MuJoCo model with ``mujoco.MjSpec`` and add what URDF cannot say.

Added here, all read from the joint table: position actuators that behave like the serial bus servos
(kp, kv, force range), joint armature and friction loss, contact excludes for the pairs that touch by
construction, a table plane, the base height, and a ``hand_tcp`` site (MuJoCo would merge the fixed
TCP link into ``link5``).
"""

from __future__ import annotations

import mujoco
import numpy as np

from roarm_lab.assets.joint_table import BASE_HEIGHT_M, FRAMES, JOINTS, TCP_FRAME
from roarm_lab.assets.links import DISABLED_COLLISIONS, DISTAL_LINKS
from roarm_lab.assets.urdf import URDF_PATH
from roarm_lab.embedded.scene_model import OBSTACLE_CONTYPE

DEFAULT_PHYSICS_DT = 1.0 / 60.0
TABLE_GEOM = "table"
# The solver of the reference model; Isaac Lab's Newton preset (physics.py) uses the same.
INTEGRATOR = "implicitfast"
CONE = "pyramidal"
SOLVER = "newton"
SOLVER_ITERATIONS = 100
LINE_SEARCH_ITERATIONS = 50
LINK_FRICTION = 0.5


def build_arm_spec(physics_dt: float = DEFAULT_PHYSICS_DT) -> mujoco.MjSpec:
    """An editable MjSpec of the arm alone, its base ``BASE_HEIGHT_M`` above z = 0; the scene adds the rest."""
    spec = mujoco.MjSpec.from_file(str(URDF_PATH))
    spec.modelname = "roarm_m3"
    spec.compiler.fusestatic = False  # keep base_link and hand_tcp as frames we can address
    spec.compiler.discardvisual = False
    spec.option.timestep = physics_dt
    spec.option.integrator = getattr(mujoco.mjtIntegrator, f"mjINT_{INTEGRATOR.upper()}")
    spec.option.cone = getattr(mujoco.mjtCone, f"mjCONE_{CONE.upper()}")
    spec.option.solver = getattr(mujoco.mjtSolver, f"mjSOL_{SOLVER.upper()}")
    spec.option.iterations = SOLVER_ITERATIONS
    spec.option.ls_iterations = LINE_SEARCH_ITERATIONS

    spec.body("base_link").pos = [0.0, 0.0, BASE_HEIGHT_M]

    # The welded frames (the TCP, the grasp centre) become sites on their link with the same pose.
    for frame in FRAMES:
        body = spec.body(frame.name)
        pos, quat = np.array(body.pos), np.array(body.quat)
        spec.delete(body)
        spec.body(frame.link).add_site(name=frame.name, pos=pos, quat=quat, size=[0.008, 0.008, 0.008],
                                       rgba=[1.0, 0.3, 0.1, 1.0] if frame.name == TCP_FRAME else [0.2, 0.6, 1.0, 0.0])

    for j in JOINTS:
        jnt = spec.joint(j.name)
        jnt.armature = j.armature
        # damping and friction loss come from the URDF's <dynamics>; armature has no URDF field
        act = spec.add_actuator(name=j.short, target=j.name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=j.kp, kv=j.kv)
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = [j.lower, j.upper]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-j.effort, j.effort]

    for a, b in DISABLED_COLLISIONS:
        spec.add_exclude(bodyname1=a, bodyname2=b)
    # Contacts that can happen within the safe joint box: the forearm, wrist and hand against the table
    # and against the base. Bit 1 marks obstacles (table, base), bit 2 the links that can hit them;
    # the upper arm and link1 cannot reach either, so they skip collision detection entirely.
    for geom in spec.geoms:
        geom.contype, geom.conaffinity = 0, 0
    spec.geom("base_link_collision").contype = OBSTACLE_CONTYPE
    for body in DISTAL_LINKS:
        for geom in spec.body(body).geoms:
            if geom.name.endswith("_collision"):
                geom.conaffinity = OBSTACLE_CONTYPE
                # hard plastic; MuJoCo takes a contact's larger coefficient, so what the arm touches decides
                geom.friction[0] = LINK_FRICTION

    home = [j.home for j in JOINTS]
    spec.add_key(name="home", qpos=home, ctrl=home)
    return spec


def add_table_plane(spec: mujoco.MjSpec) -> None:
    """The table top at z = 0 as a plane (the emulator's and the viewer's table; tasks name theirs in the scene)."""
    spec.worldbody.add_geom(name=TABLE_GEOM, type=mujoco.mjtGeom.mjGEOM_PLANE, size=[1.0, 1.0, 0.05],
                            rgba=[0.35, 0.38, 0.42, 1.0], contype=OBSTACLE_CONTYPE, conaffinity=0)


def build_spec(physics_dt: float = DEFAULT_PHYSICS_DT) -> mujoco.MjSpec:
    """An editable MjSpec of the arm on a table plane; compile it with ``.compile()``."""
    spec = build_arm_spec(physics_dt)
    add_table_plane(spec)
    return spec


def build_model(physics_dt: float = DEFAULT_PHYSICS_DT) -> mujoco.MjModel:
    """The compiled MuJoCo model of the arm."""
    return build_spec(physics_dt).compile()


def model_to_xml(physics_dt: float = DEFAULT_PHYSICS_DT) -> str:
    """MJCF text of the compiled model (for viewers and for users who want a file)."""
    spec = build_spec(physics_dt)
    spec.compile()
    return spec.to_xml()
