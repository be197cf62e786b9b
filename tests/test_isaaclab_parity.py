"""Hold the embedded runtime's stand-ins against Isaac Lab's real source (the isaaclab 2.3.2 wheel, parsed).

Every config class the runtime provides must exist in Isaac Lab with every field we declare; every MDP
function that shares a name with Isaac Lab's must accept our parameters; the articulation methods the
terms call must exist on Isaac Lab's ``Articulation``. The wheel is fetched by ``.ci/run`` (pip download);
point ``ROARM_ISAACLAB_WHEEL`` at it, or put it under ``.cache/isaaclab/``.
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
import roarm_lab.runtime.cfg as our_cfg

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "isaaclab/source/isaaclab/isaaclab/"


def _wheel() -> Path | None:
    env = os.environ.get("ROARM_ISAACLAB_WHEEL")
    if env and Path(env).is_file():
        return Path(env)
    found = sorted((ROOT / ".cache" / "isaaclab").glob("isaaclab-2.3.2*.whl"))
    return found[-1] if found else None


WHEEL = _wheel()
pytestmark = pytest.mark.skipif(WHEEL is None, reason="isaaclab wheel not downloaded (.ci/run fetches it)")


@lru_cache(maxsize=1)
def _sources() -> dict[str, ast.Module]:
    with zipfile.ZipFile(WHEEL) as zf:
        return {name[len(PREFIX):]: ast.parse(zf.read(name)) for name in zf.namelist()
                if name.startswith(PREFIX) and name.endswith(".py")}


def _classes() -> dict[str, list[ast.ClassDef]]:
    out: dict[str, list[ast.ClassDef]] = {}
    for tree in _sources().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                out.setdefault(node.name, []).append(node)
    return out


def _fields(name: str, seen: set[str] | None = None) -> set[str]:
    """Annotated or assigned attributes of an Isaac Lab class and its bases (by name)."""
    seen = seen or set()
    if name in seen:
        return set()
    seen.add(name)
    fields: set[str] = set()
    for node in _classes().get(name, []):
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                fields.add(stmt.target.id)
            elif isinstance(stmt, ast.Assign):
                fields.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
            elif isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                fields.add(stmt.name)
        for base in node.bases:
            base_name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
            if base_name:
                fields |= _fields(base_name, seen)
    return fields


MIRRORED = ["SceneEntityCfg", "NoiseCfg", "UniformNoiseCfg", "GaussianNoiseCfg", "ManagerTermBaseCfg",
            "ObservationTermCfg", "ObservationGroupCfg", "RewardTermCfg", "TerminationTermCfg", "EventTermCfg",
            "CurriculumTermCfg", "ActionTermCfg", "CommandTermCfg", "UrdfFileCfg", "ImplicitActuatorCfg",
            "ArticulationCfg", "InteractiveSceneCfg", "SimulationCfg", "ManagerBasedRLEnvCfg"]


@pytest.mark.parametrize("name", MIRRORED)
def test_config_class_and_fields_exist_in_isaac_lab(name):
    assert name in _classes(), f"Isaac Lab has no class {name}"
    ours = {f.name for f in dataclasses.fields(getattr(our_cfg, name))}
    missing = ours - _fields(name)
    assert not missing, f"{name}: fields {sorted(missing)} are not in Isaac Lab's class"


def _functions() -> dict[str, list[ast.FunctionDef]]:
    out: dict[str, list[ast.FunctionDef]] = {}
    for path, tree in _sources().items():
        if path.startswith("envs/mdp/"):
            for node in tree.body:
                if isinstance(node, ast.FunctionDef):
                    out.setdefault(node.name, []).append(node)
                elif isinstance(node, ast.ClassDef):  # class-based terms: their __call__ takes the params
                    calls = [m for m in node.body if isinstance(m, ast.FunctionDef) and m.name == "__call__"]
                    if calls:
                        out.setdefault(node.name, []).extend(calls)
    return out


def test_mdp_functions_sharing_isaac_lab_names_accept_our_parameters():
    shared = [n for n in our_mdp.__all__ if n in _functions()] if hasattr(our_mdp, "__all__") else \
        [n for n, f in vars(our_mdp).items() if inspect.isfunction(f) and n in _functions()]
    assert {"joint_pos_rel", "generated_commands", "last_action", "action_rate_l2", "joint_vel_l2", "time_out",
            "modify_reward_weight", "randomize_rigid_body_mass", "randomize_actuator_gains",
            "reset_joints_by_offset"} <= set(shared)
    for name in shared:
        ours = list(inspect.signature(getattr(our_mdp, name)).parameters)
        theirs = {a.arg for node in _functions()[name] for a in node.args.args + node.args.kwonlyargs}
        assert set(ours) <= theirs, f"{name}: parameters {set(ours) - theirs} are not in Isaac Lab's {name}"


def test_articulation_methods_the_terms_call_exist_in_isaac_lab():
    methods = _fields("Articulation")
    for name in ("find_joints", "find_bodies", "set_joint_position_target", "write_joint_state_to_sim",
                 "write_joint_armature_to_sim", "write_joint_friction_coefficient_to_sim",
                 "write_joint_viscous_friction_coefficient_to_sim", "write_data_to_sim", "update"):
        assert name in methods, name
    data = _fields("ArticulationData")
    for name in ("joint_pos", "joint_vel", "default_joint_pos", "default_joint_vel", "body_pos_w", "root_pos_w",
                 "soft_joint_pos_limits", "joint_pos_target", "default_mass"):
        assert name in data, name
