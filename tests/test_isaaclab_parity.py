"""Hold the embedded runtime's stand-ins and the task's terms against Isaac Lab's real source (wheels, parsed).

Isaac Lab 3.0.0 is the API the project is written against: every config class the embedded runtime provides
must exist there with every field we declare; every MDP function sharing a name with Isaac Lab's must accept
our parameters; every asset method and data field the terms use (found in the terms' own source with
``ast``, not listed by hand) must exist on Isaac Lab 3's ``Articulation`` / ``ArticulationData``. Isaac Lab
2.3.2 (Isaac Sim 5.1, PhysX) is checked too, and where it differs the difference is stated exactly.

The wheels are fetched by ``.ci/run`` (pip download, no install); or point ``ROARM_ISAACLAB_WHEELS`` at a
folder holding them, or put them under ``.cache/isaaclab/``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import zipfile
from functools import lru_cache
from pathlib import Path

import pytest

import roarm_lab.mdp as our_mdp
import roarm_lab.embedded.cfg as our_cfg

ROOT = Path(__file__).resolve().parents[1]
MDP_DIR = ROOT / "source" / "roarm_lab" / "mdp"
# version -> wheel name pattern, then the package prefixes whose sources are read
RELEASES = {
    "3.0.0": ("isaaclab-3.0.0-*.whl", ("isaaclab/", "isaaclab_newton/")),
    "2.3.2": ("isaaclab-2.3.2*.whl", ("isaaclab/source/isaaclab/isaaclab/",)),
}


def _wheel(version: str) -> Path | None:
    folders = [Path(os.environ["ROARM_ISAACLAB_WHEELS"])] if os.environ.get("ROARM_ISAACLAB_WHEELS") else []
    for folder in folders + [ROOT / ".cache" / "isaaclab"]:
        found = sorted(folder.glob(RELEASES[version][0]))
        if found:
            return found[-1]
    return None


def _need(version: str) -> Path:
    wheel = _wheel(version)
    if wheel is None:
        pytest.skip(f"isaaclab {version} wheel not downloaded (.ci/run fetches it)")
    return wheel


@lru_cache(maxsize=None)
def _sources(version: str) -> dict[str, ast.Module]:
    prefixes = RELEASES[version][1]
    with zipfile.ZipFile(_need(version)) as zf:
        return {name: ast.parse(zf.read(name)) for name in zf.namelist()
                if name.startswith(prefixes) and name.endswith(".py")}


@lru_cache(maxsize=None)
def _classes(version: str) -> dict[str, list[ast.ClassDef]]:
    out: dict[str, list[ast.ClassDef]] = {}
    for tree in _sources(version).values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                out.setdefault(node.name, []).append(node)
    return out


def _members(version: str, name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Annotated or assigned attributes, methods and nested classes of a class and its bases (by name)."""
    if name in seen:
        return set()
    found: set[str] = set()
    for node in _classes(version).get(name, []):
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                found.add(stmt.target.id)
            elif isinstance(stmt, ast.Assign):
                found.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
            elif isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                found.add(stmt.name)
        for base in node.bases:
            base_name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
            if base_name:
                found |= _members(version, base_name, seen | {name})
    return found


MIRRORED = ["SceneEntityCfg", "NoiseCfg", "UniformNoiseCfg", "GaussianNoiseCfg", "ManagerTermBaseCfg",
            "ObservationTermCfg", "ObservationGroupCfg", "RewardTermCfg", "TerminationTermCfg", "EventTermCfg",
            "CurriculumTermCfg", "ActionTermCfg", "CommandTermCfg", "UsdFileCfg", "PreviewSurfaceCfg",
            "UsdPhysicsCollisionCfg", "CuboidCfg", "ImplicitActuatorCfg", "AssetBaseCfg", "ArticulationCfg",
            "InteractiveSceneCfg", "SimulationCfg", "ManagerBasedRLEnvCfg", "RigidObjectCfg", "MassPropertiesCfg",
            "RigidBodyBaseCfg", "RigidBodyMaterialBaseCfg"]
NEW_IN_3_0 = {("ImplicitActuatorCfg", "joint_effort_limit"), ("ImplicitActuatorCfg", "joint_velocity_limit"),
              ("SimulationCfg", "physics"), ("ManagerBasedRLEnvCfg", "compute_final_obs"),
              ("UsdPhysicsCollisionCfg", "(class)"), ("RigidBodyBaseCfg", "(class)"), ("RigidBodyMaterialBaseCfg", "(class)")}
"""Config classes and fields the task uses that Isaac Lab 2.3.2 does not have (3.0 renamed or added them)."""


def _missing_fields(version: str) -> set[tuple[str, str]]:
    """(class, field) pairs the embedded runtime declares that this Isaac Lab lacks; (class, "(class)") if the
    whole class is absent."""
    out = set()
    for name in MIRRORED:
        if name not in _classes(version):
            out.add((name, "(class)"))
            continue
        ours = {f.name for f in dataclasses.fields(getattr(our_cfg, name))}
        out |= {(name, f) for f in ours - _members(version, name)}
    return out


def test_config_classes_and_fields_exist_in_isaac_lab_3():
    missing = _missing_fields("3.0.0")
    assert not missing, f"fields the embedded runtime declares that Isaac Lab 3.0 lacks: {sorted(missing)}"


def test_isaac_lab_2_3_lacks_exactly_the_fields_3_0_introduced():
    assert _missing_fields("2.3.2") == NEW_IN_3_0


def _mdp_functions(version: str) -> dict[str, list[ast.FunctionDef]]:
    out: dict[str, list[ast.FunctionDef]] = {}
    for path, tree in _sources(version).items():
        if "/envs/mdp/" in path:
            for node in tree.body:
                if isinstance(node, ast.FunctionDef):
                    out.setdefault(node.name, []).append(node)
                elif isinstance(node, ast.ClassDef):  # class-based terms: their __call__ takes the params
                    calls = [m for m in node.body if isinstance(m, ast.FunctionDef) and m.name == "__call__"]
                    out.setdefault(node.name, []).extend(calls)
    return out


def test_mdp_terms_sharing_isaac_lab_names_accept_our_parameters():
    theirs_by_name = _mdp_functions("3.0.0")
    shared = [n for n in our_mdp.__all__ if n in theirs_by_name]
    assert {"joint_pos_rel", "generated_commands", "last_action", "action_rate_l2", "joint_vel_l2", "time_out",
            "modify_reward_weight", "randomize_rigid_body_mass", "randomize_actuator_gains",
            "reset_joints_by_offset"} <= set(shared)
    for name in shared:
        term = getattr(our_mdp, name)
        ours = list(inspect.signature(term.__call__ if inspect.isclass(term) else term).parameters)
        theirs = {a.arg for node in theirs_by_name[name] for a in node.args.args + node.args.kwonlyargs}
        assert set(ours) <= theirs, f"{name}: parameters {set(ours) - theirs} are not in Isaac Lab's {name}"


def _asset_api_used_by_terms() -> tuple[set[str], set[str]]:
    """(asset methods, data fields) the MDP terms use, read from their source: ``x.write_*(...)``,
    ``x.set_*_index(...)``, ``x.find_*(...)`` calls, ``*.data.<field>`` reads, and field names passed as strings."""
    methods, fields = set(), set()
    for path in MDP_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                if name.startswith(("write_", "find_")) or (name.startswith("set_") and name.endswith("_index")):
                    if not (isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "target_command"):
                        methods.add(name)
                if name == "_nominal" and node.args and isinstance(node.args[0], ast.Constant):
                    fields.add(node.args[0].value)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "data":
                fields.add(node.attr)
    return methods, fields


def test_the_asset_api_the_terms_use_exists_in_isaac_lab_3():
    methods, fields = _asset_api_used_by_terms()
    assert {"write_joint_position_to_sim_index", "set_masses_index", "set_inertias_index",
            "write_joint_stiffness_to_sim_index"} <= methods  # the scan works
    assert {"joint_pos", "body_mass", "joint_stiffness"} <= fields
    articulation = _members("3.0.0", "Articulation")
    data = _members("3.0.0", "ArticulationData")
    assert not methods - articulation, f"Isaac Lab 3's Articulation lacks {sorted(methods - articulation)}"
    assert not fields - data, f"Isaac Lab 3's ArticulationData lacks {sorted(fields - data)}"
    assert "set_position_index" in _members("3.0.0", "ActuatorTargetCommand")  # the action term's setpoint writer


def test_isaac_lab_2_3_lacks_the_3_0_asset_api_the_terms_use():
    """Stated, not hidden: the terms are Isaac Lab 3 code (``.torch`` data, ``*_index`` writers)."""
    methods, _ = _asset_api_used_by_terms()
    index_writers = {m for m in methods if m.endswith("_index")}
    assert index_writers and not index_writers & _members("2.3.2", "Articulation")
