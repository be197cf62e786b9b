"""Write the project's RoArm-M3 as a USD stage (UsdPhysics only) from the joint and link tables.

Isaac Lab spawns articulations from USD. Instead of running Isaac Sim's URDF importer (seven extra packages
installed around a broken dependency pin, a PhysX schema fallback that must be imported before the stage
exists, and a ``hand_tcp`` that comes out as an Xform, not a body), the arm is written here directly with
the standard ``UsdPhysics`` schemas, which Newton and PhysX both read: one rigid body per link (mass,
centre of mass, diagonal inertia), box colliders sized from the link envelopes, revolute joints with the
safe-box limits, and ``hand_tcp`` as a small body on a fixed joint so Isaac Lab finds it with
``find_bodies``. Collision filtering matches the MuJoCo model (``mjcf.py``): only the forearm, wrist, hand
and gripper collide, and only with the base and the table. Servo gains, armature and friction are not
authored: the scene's actuator config writes them from the same joint table on every backend.

The committed ``data/roarm_m3.usda`` is this module's output (a test keeps them identical). It needs
``pxr``: Isaac Lab 3 installs it; in the default venv the optional extra ``usd`` does (``usd-core``, OpenUSD's
own wheel, no Isaac Sim):

    pip install -e ".[usd]"
    python -m roarm_lab.assets.usd [OUT.usda]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from roarm_lab.assets.joint_table import FRAMES, JOINTS
from roarm_lab.assets.links import DISABLED_COLLISIONS, DISTAL_LINKS, LINKS
from roarm_lab.utils.io import atomic_write_text

USD_PATH = Path(__file__).resolve().parent / "data" / "roarm_m3.usda"
ROOT = "/roarm_m3"
TCP_MASS_KG = 1e-4
"""``hand_tcp`` must be a body for Isaac Lab; welded to link5, its mass only has to be small and positive."""
TCP_INERTIA = 0.4 * TCP_MASS_KG * 0.01 ** 2
"""A 1 cm sphere's inertia of that mass (kg m^2)."""
COLLIDING_LINKS = ("base_link",) + DISTAL_LINKS
USD_EXTRA = 'pip install -e ".[usd]"'


class UsdUnavailable(ImportError):
    """``pxr`` is not importable: OpenUSD's bindings are an optional extra, so callers can say how to get them."""


def require_pxr() -> None:
    """Raise ``UsdUnavailable`` naming the install command if ``pxr`` is missing (instead of a bare traceback)."""
    try:
        import pxr  # noqa: F401
    except ImportError:
        raise UsdUnavailable(f"No module named pxr: install OpenUSD's Python bindings (usd-core) with "
                             f"{USD_EXTRA}") from None


def rpy_matrix(rpy: tuple[float, float, float]) -> np.ndarray:
    """URDF roll-pitch-yaw (fixed axes x, y, z) as a rotation matrix."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def matrix_quat_wxyz(m: np.ndarray) -> tuple[float, float, float, float]:
    """Rotation matrix to a unit quaternion (w, x, y, z), w >= 0."""
    w = math.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2.0
    x = math.copysign(math.sqrt(max(0.0, 1.0 + m[0, 0] - m[1, 1] - m[2, 2])) / 2.0, m[2, 1] - m[1, 2])
    y = math.copysign(math.sqrt(max(0.0, 1.0 - m[0, 0] + m[1, 1] - m[2, 2])) / 2.0, m[0, 2] - m[2, 0])
    z = math.copysign(math.sqrt(max(0.0, 1.0 - m[0, 0] - m[1, 1] + m[2, 2])) / 2.0, m[1, 0] - m[0, 1])
    q = np.array([w, x, y, z])
    return tuple(float(v) for v in q / np.linalg.norm(q))  # type: ignore[return-value]


def link_poses_at_zero() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each link's (position, rotation) in the ``base_link`` frame with every joint at 0."""
    poses = {"base_link": (np.zeros(3), np.eye(3))}
    chain = [(j.parent, j.child, j.origin_xyz, j.origin_rpy) for j in JOINTS]
    chain += [(f.link, f.name, f.xyz, f.rpy) for f in FRAMES]
    for parent, child, xyz, rpy in chain:
        p_pos, p_rot = poses[parent]
        poses[child] = (p_pos + p_rot @ np.asarray(xyz), p_rot @ rpy_matrix(rpy))
    return poses


def build_stage():
    """The arm as an in-memory ``Usd.Stage`` (default prim ``/roarm_m3``, z up, metres)."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdPhysics

    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, ROOT)
    stage.SetDefaultPrim(root.GetPrim())
    UsdPhysics.ArticulationRootAPI.Apply(root.GetPrim())
    poses = link_poses_at_zero()

    def body(name: str) -> Usd.Prim:
        pos, rot = poses[name]
        xform = UsdGeom.Xform.Define(stage, f"{ROOT}/{name}")
        xform.AddTranslateOp().Set(Gf.Vec3d(*pos.tolist()))
        xform.AddOrientOp().Set(Gf.Quatf(*matrix_quat_wxyz(rot)))
        UsdPhysics.RigidBodyAPI.Apply(xform.GetPrim())
        return xform.GetPrim()

    for spec in LINKS:
        prim = body(spec.name)
        mass = UsdPhysics.MassAPI.Apply(prim)
        mass.CreateMassAttr(spec.mass)
        mass.CreateCenterOfMassAttr(Gf.Vec3f(*spec.com))
        mass.CreateDiagonalInertiaAttr(Gf.Vec3f(*spec.inertia_diag))
        mass.CreatePrincipalAxesAttr(Gf.Quatf(1.0, 0.0, 0.0, 0.0))
        for shape in spec.shapes:
            part = "box" if shape.part == "collision" else shape.part.removesuffix("_collision")
            box = UsdGeom.Cube.Define(stage, f"{ROOT}/{spec.name}/{part}")
            box.CreateSizeAttr(1.0)
            box.AddTranslateOp().Set(Gf.Vec3d(*shape.center))
            if shape.yaw:
                box.AddRotateZOp().Set(math.degrees(shape.yaw))
            box.AddScaleOp().Set(Gf.Vec3f(*shape.size))
            box.CreateDisplayColorAttr([Gf.Vec3f(0.92, 0.92, 0.92)])
            if spec.name in COLLIDING_LINKS:
                UsdPhysics.CollisionAPI.Apply(box.GetPrim())
    for frame in FRAMES:
        frame_mass = UsdPhysics.MassAPI.Apply(body(frame.name))
        frame_mass.CreateMassAttr(TCP_MASS_KG)
        frame_mass.CreateCenterOfMassAttr(Gf.Vec3f(0.0, 0.0, 0.0))
        frame_mass.CreateDiagonalInertiaAttr(Gf.Vec3f(*(TCP_INERTIA,) * 3))
        frame_mass.CreatePrincipalAxesAttr(Gf.Quatf(1.0, 0.0, 0.0, 0.0))

    def joint_frame(joint, parent: str, xyz, rpy) -> None:
        joint.CreateBody0Rel().SetTargets([Sdf.Path(f"{ROOT}/{parent}")])
        joint.CreateLocalPos0Attr(Gf.Vec3f(*xyz))
        joint.CreateLocalRot0Attr(Gf.Quatf(*matrix_quat_wxyz(rpy_matrix(rpy))))
        joint.CreateLocalPos1Attr(Gf.Vec3f(0.0, 0.0, 0.0))
        joint.CreateLocalRot1Attr(Gf.Quatf(1.0, 0.0, 0.0, 0.0))

    UsdGeom.Scope.Define(stage, f"{ROOT}/joints")
    fixed = UsdPhysics.FixedJoint.Define(stage, f"{ROOT}/joints/root_joint")  # body0 unset: the world
    fixed.CreateBody1Rel().SetTargets([Sdf.Path(f"{ROOT}/base_link")])
    for j in JOINTS:
        joint = UsdPhysics.RevoluteJoint.Define(stage, f"{ROOT}/joints/{j.name}")
        joint_frame(joint, j.parent, j.origin_xyz, j.origin_rpy)
        joint.CreateBody1Rel().SetTargets([Sdf.Path(f"{ROOT}/{j.child}")])
        joint.CreateAxisAttr(UsdPhysics.Tokens.z)
        joint.CreateLowerLimitAttr(math.degrees(j.lower))  # UsdPhysics angles are in degrees
        joint.CreateUpperLimitAttr(math.degrees(j.upper))
    for frame in FRAMES:
        weld = UsdPhysics.FixedJoint.Define(stage, f"{ROOT}/joints/{frame.link}_to_{frame.name}")
        joint_frame(weld, frame.link, frame.xyz, frame.rpy)
        weld.CreateBody1Rel().SetTargets([Sdf.Path(f"{ROOT}/{frame.name}")])

    # Pairs that never collide (as in the MuJoCo model): distal links among themselves, and the SRDF's pairs.
    never = {frozenset(pair) for pair in DISABLED_COLLISIONS}
    never |= {frozenset((a, b)) for a in DISTAL_LINKS for b in DISTAL_LINKS if a != b}
    for i, name in enumerate(COLLIDING_LINKS):
        others = [o for o in COLLIDING_LINKS[i + 1:] if frozenset((name, o)) in never]
        if others:
            UsdPhysics.FilteredPairsAPI.Apply(stage.GetPrimAtPath(f"{ROOT}/{name}")).CreateFilteredPairsRel() \
                .SetTargets([Sdf.Path(f"{ROOT}/{o}") for o in others])
    return stage


def build_usda() -> str:
    """The USDA text of the arm."""
    stage = build_stage()  # keep the stage alive while its layer is read
    text = stage.GetRootLayer().ExportToString()
    header = ("#usda 1.0\n# RoArm Lab's own RoArm-M3, generated by roarm_lab.assets.usd from the joint and link tables.\n"
              "# Do not edit by hand: change the tables and regenerate. Primitive shapes only.\n")
    return header + text.split("\n", 1)[1]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else USD_PATH
    try:
        require_pxr()
    except UsdUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    atomic_write_text(out, build_usda())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
