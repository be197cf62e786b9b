"""Read a robot USD (any, not only ours) and hold it against the joint table: ``roarm-usd inspect PATH``.

A USD from elsewhere (an importer, a colleague's edit, a vendor's file) can disagree with the joint table that
the task, the MuJoCo model and the real-arm driver all read. This lists the stage's revolute and prismatic joints
(bodies, axis, limits) and rigid bodies (masses), compares the joints with the table by name, and exits 1 when they
differ. It only reads: the stage is opened and never saved, and ``--update-joints OUT.diff`` writes a unified
diff of ``joint_table.py`` that would adopt the USD's limits, for a person to review and ``git apply``; the table
itself is never written.

UsdPhysics stores revolute limits in degrees and prismatic ones in stage units; everything here is rad and m.
It needs ``pxr`` (``pip install -e ".[usd]"``, OpenUSD's ``usd-core`` wheel; Isaac Lab 3 brings its own).

    roarm-usd inspect PATH [--json] [--tolerance RAD] [--update-joints OUT.diff]
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roarm_lab.assets import joint_table
from roarm_lab.assets.joint_table import HALF_PI, JOINTS, JointSpec
from roarm_lab.assets.usd import UsdUnavailable, require_pxr
from roarm_lab.utils.io import atomic_write_text

TABLE_PATH = Path(joint_table.__file__).resolve()
TOLERANCE = 1e-3
"""Limit differences below this (rad, or m) are float noise: a servo step is 2 pi / 4096 = 1.5e-3 rad, and USD
stores limits as float32 degrees (about 1e-7 rad of round-off)."""
USD_SUFFIXES = (".usd", ".usda", ".usdc", ".usdz")
NAMED_VALUES = (("math.pi", math.pi), ("-math.pi", -math.pi), ("HALF_PI", HALF_PI), ("-HALF_PI", -HALF_PI))
"""Constants the table writes by name; an adopted limit equal to one keeps the name in the diff."""


class UsdInspectError(ValueError):
    """A USD that cannot be inspected (missing, unreadable, no pxr); the message says what to do."""


@dataclass(frozen=True)
class UsdJoint:
    """A revolute or prismatic joint of the stage; limits in rad (revolute) or m (prismatic), None if free."""

    name: str
    path: str
    type: str
    body0: str | None
    """Prim path of the first body; None is the world."""
    body1: str | None
    axis: str
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class UsdBody:
    """A prim with ``RigidBodyAPI``; ``mass_kg`` only where a mass is authored (a density alone is not one)."""

    name: str
    path: str
    mass_kg: float | None


@dataclass(frozen=True)
class LimitDifference:
    joint: str
    table: tuple[float, float]
    usd: tuple[float | None, float | None]


@dataclass
class Comparison:
    """The stage's joints against the table's, by name."""

    tolerance: float
    missing: list[str] = field(default_factory=list)
    """Table joints the stage lacks (or has only as another joint type)."""
    extra: list[str] = field(default_factory=list)
    """Stage joints the table does not name."""
    limits: list[LimitDifference] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    """Joints that connect other bodies than the table's parent and child."""
    types: list[dict[str, str]] = field(default_factory=list)
    """Table joints (all revolute) that are prismatic in the stage."""

    @property
    def matches(self) -> bool:
        return not (self.missing or self.extra or self.limits or self.bodies or self.types)

    def as_dict(self, digits: int = 6) -> dict[str, Any]:
        return {"matches": self.matches, "tolerance": self.tolerance, "missing": self.missing, "extra": self.extra,
                "limits": [{"joint": d.joint, "table": _rounded(d.table, digits), "usd": _rounded(d.usd, digits)}
                           for d in self.limits],
                "bodies": self.bodies, "types": self.types}


@dataclass
class Inspection:
    path: Path
    joints: list[UsdJoint]
    bodies: list[UsdBody]
    comparison: Comparison

    def as_dict(self) -> dict[str, Any]:
        """Everything, full paths and 6 decimals (``--json``)."""
        return {"path": str(self.path),
                "joints": [{"name": j.name, "path": j.path, "type": j.type, "body0": j.body0, "body1": j.body1,
                            "axis": j.axis, "lower": _round(j.lower, 6), "upper": _round(j.upper, 6)}
                           for j in self.joints],
                "bodies": [{"name": b.name, "path": b.path, "mass_kg": _round(b.mass_kg, 6)} for b in self.bodies],
                "comparison": self.comparison.as_dict()}

    def summary(self) -> dict[str, Any]:
        """The compact form a chat pays for: prim names instead of paths, 4 decimals, no free-joint nulls."""
        joints = []
        for j in self.joints:
            entry: dict[str, Any] = {"name": j.name, "type": j.type, "body0": _name(j.body0), "body1": _name(j.body1),
                                     "axis": j.axis}
            entry.update({k: _round(v, 4) for k, v in (("lower", j.lower), ("upper", j.upper)) if v is not None})
            joints.append(entry)
        bodies = [{"name": b.name, **({"mass_kg": _round(b.mass_kg, 4)} if b.mass_kg is not None else {})}
                  for b in self.bodies]
        return {"joints": joints, "bodies": bodies, "comparison": self.comparison.as_dict(4)}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _rounded(values: tuple, digits: int) -> list:
    return [_round(v, digits) for v in values]


def _name(path: str | None) -> str | None:
    return None if path is None else path.rsplit("/", 1)[-1]


def _limit(value: Any, scale: float) -> float | None:
    """An authored, finite limit scaled to rad or m; UsdPhysics' +-inf (its fallback) means free."""
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value) * scale


def open_stage(path: Path):
    """The stage at ``path``, opened for reading (nothing here ever saves it)."""
    require_pxr()
    from pxr import Usd

    path = Path(path)
    if not path.is_file():
        raise UsdInspectError(f"{path} is not a file: name a .usd, .usda, .usdc or .usdz file")
    try:
        stage = Usd.Stage.Open(str(path), Usd.Stage.LoadAll)
    except Exception as err:  # pxr raises Tf.ErrorException: "Error in '<function>' at line ... : '<why>'"
        why = str(err).strip().splitlines()[-1].rsplit(" : ", 1)[-1].strip("'\" ") if str(err).strip() else ""
        raise UsdInspectError(f"{path} is not a USD stage pxr can open ({why or type(err).__name__}): re-export it "
                              "as .usda or .usdc") from None
    if stage is None:
        raise UsdInspectError(f"{path} is not a USD stage pxr can open: re-export it as .usda or .usdc")
    return stage


def read_stage(stage) -> tuple[list[UsdJoint], list[UsdBody]]:
    """Revolute and prismatic joints and rigid bodies, in stage order (instance proxies included)."""
    from pxr import Usd, UsdGeom, UsdPhysics

    metres = UsdGeom.GetStageMetersPerUnit(stage)
    kilograms = UsdPhysics.GetStageKilogramsPerUnit(stage)
    joints: list[UsdJoint] = []
    bodies: list[UsdBody] = []
    for prim in stage.Traverse(Usd.TraverseInstanceProxies()):
        for kind, schema, scale in (("revolute", UsdPhysics.RevoluteJoint, math.pi / 180.0),
                                    ("prismatic", UsdPhysics.PrismaticJoint, metres)):
            if prim.IsA(schema):
                joint = schema(prim)
                body0, body1 = (rel.GetTargets() for rel in (joint.GetBody0Rel(), joint.GetBody1Rel()))
                joints.append(UsdJoint(
                    prim.GetName(), str(prim.GetPath()), kind, str(body0[0]) if body0 else None,
                    str(body1[0]) if body1 else None, str(joint.GetAxisAttr().Get() or "X"),
                    _limit(joint.GetLowerLimitAttr().Get(), scale), _limit(joint.GetUpperLimitAttr().Get(), scale)))
        if prim.HasAPI(UsdPhysics.RigidBodyAPI):
            mass = None
            if prim.HasAPI(UsdPhysics.MassAPI):
                attr = UsdPhysics.MassAPI(prim).GetMassAttr()
                value = attr.Get() if attr.HasAuthoredValue() else None
                mass = float(value) * kilograms if value else None  # 0 is UsdPhysics' "not given"
            bodies.append(UsdBody(prim.GetName(), str(prim.GetPath()), mass))
    return joints, bodies


def compare(joints: list[UsdJoint], table: tuple[JointSpec, ...] = JOINTS, tolerance: float = TOLERANCE) -> Comparison:
    """The stage's joints against the table's by name: missing, extra, other bodies, other types, other limits."""
    found = {}
    for j in joints:
        found.setdefault(j.name, j)
    names = {spec.name for spec in table}
    result = Comparison(tolerance, extra=[j.name for j in joints if j.name not in names])
    for spec in table:
        usd = found.get(spec.name)
        if usd is None:
            result.missing.append(spec.name)
            continue
        if usd.type != "revolute":
            result.types.append({"joint": spec.name, "usd": usd.type})
            continue
        if (_name(usd.body0), _name(usd.body1)) != (spec.parent, spec.child):
            result.bodies.append({"joint": spec.name, "table": [spec.parent, spec.child],
                                  "usd": [_name(usd.body0), _name(usd.body1)]})
        pairs = ((usd.lower, spec.lower), (usd.upper, spec.upper))
        if any(have is None or abs(have - want) > tolerance for have, want in pairs):
            result.limits.append(LimitDifference(spec.name, (spec.lower, spec.upper), (usd.lower, usd.upper)))
    return result


def inspect_usd(path: str | Path, tolerance: float = TOLERANCE) -> Inspection:
    """Open ``path`` read-only, list its joints and bodies, compare the joints with the joint table."""
    path = Path(path)
    if path.suffix.lower() not in USD_SUFFIXES:
        raise UsdInspectError(f"{path} is not a USD file: name a .usd, .usda, .usdc or .usdz file")
    stage = open_stage(path)
    joints, bodies = read_stage(stage)
    return Inspection(path, joints, bodies, compare(joints, tolerance=tolerance))


# ---------------------------------------------------------------------- the reviewed table diff
def _literal(value: float) -> str:
    """How the table writes a limit: a named constant where it is one, else at most 6 decimals."""
    for text, known in NAMED_VALUES:
        if abs(value - known) < 1e-6:
            return text
    text = f"{value:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _limit_nodes(source: str) -> dict[str, tuple[ast.expr, ast.expr]]:
    """Each ``JointSpec(...)`` of ``JOINTS`` by joint name: the expressions of its lower and upper limit."""
    nodes: dict[str, tuple[ast.expr, ast.expr]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "JointSpec":
            args = {k.arg: k.value for k in node.keywords}
            name = node.args[0] if node.args else args.get("name")
            lower = node.args[6] if len(node.args) > 6 else args.get("lower")
            upper = node.args[7] if len(node.args) > 7 else args.get("upper")
            if isinstance(name, ast.Constant) and lower is not None and upper is not None:
                nodes[name.value] = (lower, upper)
    return nodes


def _diff_label(table: Path) -> str:
    """The table's path as ``git apply`` expects it: relative to the checkout that holds it."""
    for folder in table.parents:
        if (folder / ".git").exists():
            return table.relative_to(folder).as_posix()
    return table.name


def joint_table_diff(inspection: Inspection, table: Path = TABLE_PATH) -> tuple[str, list[str]]:
    """A unified diff of ``table`` that adopts the stage's limits where they differ, and the joints it changes.

    Only finite limits can be adopted; missing, extra and re-parented joints are for a person to edit by hand.
    """
    source = table.read_text()
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    nodes = _limit_nodes(source)
    edits: list[tuple[int, int, str]] = []
    changed: list[str] = []
    for diff in inspection.comparison.limits:
        if diff.joint not in nodes:
            continue
        touched = False
        for node, want, have in zip(nodes[diff.joint], diff.table, diff.usd):
            if have is None or abs(have - want) <= inspection.comparison.tolerance:
                continue
            start = offsets[node.lineno - 1] + len(lines[node.lineno - 1].encode()[:node.col_offset].decode())
            end = offsets[node.end_lineno - 1] + len(lines[node.end_lineno - 1].encode()[:node.end_col_offset].decode())
            edits.append((start, end, _literal(have)))
            touched = True
        if touched:
            changed.append(diff.joint)
    new = source
    for start, end, text in sorted(edits, reverse=True):
        new = new[:start] + text + new[end:]
    if new == source:
        return "", []
    label = _diff_label(table)
    text = "".join(difflib.unified_diff(source.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"a/{label}", f"b/{label}"))
    return text, changed


# ---------------------------------------------------------------------- the command line
def _fmt(value: float | None) -> str:
    return "free" if value is None else f"{value:.4f}"


def format_report(inspection: Inspection) -> str:
    """The joints (with the table's limits beside the stage's), the bodies, and the verdict, as plain text."""
    cmp = inspection.comparison
    table = {spec.name: spec for spec in JOINTS}
    flagged = {d.joint: "limits" for d in cmp.limits}
    flagged.update({d["joint"]: "bodies" for d in cmp.bodies if d["joint"] not in flagged})
    flagged.update({d["joint"]: "type" for d in cmp.types})
    rows = [("joint", "type", "body0 -> body1", "axis", "lower", "upper", "table lower", "table upper", "status")]
    for j in inspection.joints:
        spec = table.get(j.name)
        status = "extra" if spec is None else flagged.get(j.name, "ok")
        rows.append((j.name, j.type, f"{_name(j.body0) or 'world'} -> {_name(j.body1) or 'world'}", j.axis,
                     _fmt(j.lower), _fmt(j.upper), _fmt(spec.lower) if spec else "-", _fmt(spec.upper) if spec else "-",
                     status))
    for name in cmp.missing:
        spec = table[name]
        rows.append((name, "-", f"{spec.parent} -> {spec.child}", "-", "-", "-", _fmt(spec.lower), _fmt(spec.upper),
                     "missing"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = [f"{inspection.path}: {len(inspection.joints)} joints (limits in rad, prismatic in m), "
           f"{len(inspection.bodies)} rigid bodies"]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    if inspection.bodies:
        out.append("")
        width = max(len(b.name) for b in inspection.bodies)
        out += [f"{b.name.ljust(width)}  " + ("mass not authored" if b.mass_kg is None else f"{b.mass_kg:.4f} kg")
                for b in inspection.bodies]
    out.append("")
    if cmp.matches:
        out.append(f"matches the joint table ({len(JOINTS)} joints, tolerance {cmp.tolerance:g})")
    else:
        parts = [f"{len(v)} {k}" for k, v in (("with other limits", cmp.limits), ("missing", cmp.missing),
                                              ("extra", cmp.extra), ("with other bodies", cmp.bodies),
                                              ("of another type", cmp.types)) if v]
        out.append(f"differs from the joint table: {', '.join(parts)} (tolerance {cmp.tolerance:g})")
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roarm-usd", description="Inspect a robot USD against the joint table "
                                "(needs pip install -e \".[usd]\").")
    sub = p.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("inspect", help="list a USD's joints, limits and bodies and compare them with the joint "
                         "table; exit 0 if they match, 1 if they differ")
    ins.add_argument("path", type=Path, help="a .usd, .usda, .usdc or .usdz file")
    ins.add_argument("--json", action="store_true", help="print machine-readable JSON instead of the table")
    ins.add_argument("--tolerance", type=float, default=TOLERANCE,
                     help=f"limit differences up to this (rad or m) count as equal (default {TOLERANCE:g})")
    ins.add_argument("--update-joints", dest="update_joints", type=Path, metavar="OUT.diff",
                     help="write a unified diff of joint_table.py adopting the USD's limits, for review and git apply "
                          "(the table itself is never written)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
            raise UsdInspectError(f"--tolerance must be a finite number >= 0, got {args.tolerance}")
        if args.update_joints is not None and args.update_joints.resolve() == TABLE_PATH:
            raise UsdInspectError("--update-joints writes a diff for review, never the table itself: name another "
                                  "file, e.g. joint_table.diff")
        inspection = inspect_usd(args.path, args.tolerance)
    except (UsdInspectError, UsdUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(inspection.as_dict(), indent=2) if args.json else format_report(inspection))
    if args.update_joints is not None:
        text, changed = joint_table_diff(inspection)
        to = sys.stderr if args.json else sys.stdout
        if text:
            atomic_write_text(args.update_joints, text)
            print(f"wrote {args.update_joints}: the USD's limits of {', '.join(changed)}; review it, then "
                  f"git apply {args.update_joints}", file=to)
        else:
            print(f"no finite limit to adopt: {args.update_joints} not written", file=to)
    return 0 if inspection.comparison.matches else 1


if __name__ == "__main__":
    raise SystemExit(main())
