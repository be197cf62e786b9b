"""The policy contract, ``policy.json``: written here, read here, checked here (schema, sizes, limits).

Every consumer of an export (play.py, the gateway, the real-arm bridge, the simulator service, the MCP tools)
reads it through ``load_spec``. The file is input from disk, so it is checked as a whole before anything acts on
it: types, sizes, finite numbers, and above all the joint limits. The joint table is the authority on the arm's
safe box; an export may only narrow it, so limits outside the box are refused, not trusted.

Schema 2 names the observation term that carries the servos' joint readings (``measured_joint_pos_term``:
where a relative-action client starts its targets); schema 1 files (without it) are read with the old rule,
the term named ``joint_pos``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from roarm_lab.assets.joint_table import JOINTS
from roarm_lab.utils.files import UnsafeFileError, read_bounded_text
from roarm_lab.utils.provenance import config_hash, git_hash

SCHEMA_VERSION = 2
SUPPORTED_SCHEMAS = (1, 2)
POLICY_GROUP = "policy"
MEASURED_TERM_FUNCTION = "servo_joint_pos_rel"
"""The observation function whose term is the servos' reading of the action joints (relative to home)."""
LEGACY_MEASURED_TERM = "joint_pos"


def measured_joint_pos_term(env: Any, action_name: str) -> str | None:
    """The policy term that reads the action term's servos, found in the config (None if there is none)."""
    group = getattr(env.cfg.observations, POLICY_GROUP)
    for name in env.observation_manager.active_terms[POLICY_GROUP]:
        term = getattr(group, name, None)
        func = getattr(term, "func", None)
        if getattr(func, "__name__", "") == MEASURED_TERM_FUNCTION and term.params.get("action_name") == action_name:
            return name
    return None


def measured_slice(meta: dict[str, Any]) -> slice | None:
    """Where the action joints' readings (rel. default) sit in the observation, from the spec itself."""
    obs = meta["observation"]
    name = obs.get("measured_joint_pos_term") if meta["schema_version"] >= 2 else LEGACY_MEASURED_TERM
    term = next((t for t in obs["terms"] if t["name"] == name), None)
    return slice(term["start"], term["stop"]) if term and term["size"] == meta["action"]["size"] else None




def observation_layout(env: Any, group: str = POLICY_GROUP) -> list[dict[str, Any]]:
    """Names, sizes and slices of the terms of an observation group, in the order the policy sees them."""
    manager = env.observation_manager
    names = manager.active_terms[group]
    dims = manager.group_obs_term_dim[group]
    layout, start = [], 0
    for name, dim in zip(names, dims):
        size = int(dim[0])
        layout.append({"name": name, "start": start, "stop": start + size, "size": size})
        start += size
    return layout


def action_terms(env: Any) -> list[dict[str, Any]]:
    """Every action term in the policy's output order: its name, size and joints; a binary gripper also says the
    positions it opens and closes to (a negative output closes)."""
    out = []
    for name in env.action_manager.active_terms:
        term = env.action_manager.get_term(name)
        entry = {"term": name, "size": int(term.action_dim), "joint_names": list(term.joint_names)}
        if hasattr(term, "closing"):
            entry.update(kind="binary", open=list(term.cfg.open_command_expr.values()),
                         close=list(term.cfg.close_command_expr.values()))
        out.append(entry)
    return out


def build_spec(env: Any, task: str) -> dict[str, Any]:
    """The ``policy.json`` document: the arm's action term (its convention, in ``action``), every term of the
    output (``action_terms``, ``output_size``) and the policy observation group."""
    from roarm_lab.registry import task_profile

    term_name = task_profile(task).arm_action
    term = env.action_manager.get_term(term_name)
    lower, upper = term.limits
    by_name = {j.name: j for j in JOINTS}
    action_joints = [by_name[n] for n in term.joint_names]
    return {
        "schema_version": SCHEMA_VERSION,
        "task": task,
        "observation": {
            "group": POLICY_GROUP,
            "size": int(env.observation_manager.group_obs_dim[POLICY_GROUP][0]),
            "terms": observation_layout(env),
            "normalizer": "folded into the model (feed raw observations)",
            "joint_names": [j.name for j in action_joints],
            "measured_joint_pos_term": measured_joint_pos_term(env, term_name),
        },
        "action": {
            "term": term_name,
            "size": term.action_dim,
            "names": [j.short for j in action_joints],
            "joint_names": [j.name for j in action_joints],
            "mode": term.mode,
            "convention": ("relative joint targets: target_t = clamp(target_{t-1} + scale * action, lower, upper), "
                           "target_0 = measured joint positions" if term.mode == "relative" else
                           "absolute joint targets: target = clamp(offset + scale * action, lower, upper)")
                          + "; then target_t - target_{t-1} is clamped to +-max_step (if not null)",
            "scale": term.scale.tolist(),
            "offset": term.offset.tolist(),
            "lower": lower.tolist(),
            "upper": upper.tolist(),
            "max_step": term.max_step,
            "firmware_fields": [j.firmware_field for j in action_joints],
        },
        "action_terms": action_terms(env),
        "output_size": int(env.action_manager.total_action_dim),
        "control_period_s": env.step_dt,
        "physics_dt_s": env.physics_dt,
        "decimation": env.cfg.decimation,
        "default_joint_pos": {j.name: j.home for j in JOINTS},
        "config_hash": config_hash(env.cfg),
        "git": git_hash(),
    }


MAX_META_BYTES = 1 << 20
LIMIT_TOLERANCE = 1e-6
"""float32 rounding of the box's bounds (pi in float32 is 9e-8 above math.pi)."""
_BY_NAME = {j.name: j for j in JOINTS}


class PolicyLoadError(ValueError):
    pass


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _file_name(value: Any) -> bool:
    return isinstance(value, str) and value not in ("", ".", "..") and "/" not in value and "\\" not in value


def spec_problems(meta: Any) -> list[str]:
    """Everything wrong with a policy.json document (empty if it is usable), each naming its field."""
    if not isinstance(meta, dict):
        return ["the document must be a JSON object"]
    bad: list[str] = []
    if not _int(meta.get("schema_version")) or meta.get("schema_version") not in SUPPORTED_SCHEMAS:
        bad.append(f"schema_version {meta.get('schema_version')!r} is not supported {list(SUPPORTED_SCHEMAS)}")
    if not isinstance(meta.get("task"), str):
        bad.append("task must be a string")
    period = meta.get("control_period_s")
    if not _number(period) or not 0 < period <= 1.0:
        bad.append(f"control_period_s {period!r} must be a number in (0, 1] s")
    obs, act = meta.get("observation"), meta.get("action")
    if not isinstance(obs, dict) or not isinstance(act, dict):
        return bad + ["observation and action must be objects"]
    bad += _observation_problems(obs)
    action_bad = _action_problems(act, meta.get("default_joint_pos"))
    bad += action_bad or _output_problems(meta)
    files = meta.get("files", {})
    if not isinstance(files, dict) or not all(_file_name(files.get(k)) for k in ("onnx", "torchscript") if k in files):
        bad.append("files.onnx and files.torchscript must be plain file names inside the export folder")
    if "config_hash" in meta and not isinstance(meta["config_hash"], str):
        bad.append("config_hash must be a string")
    return bad


def _observation_problems(obs: dict) -> list[str]:
    size, terms = obs.get("size"), obs.get("terms")
    if not _int(size) or not 0 < size <= 4096:
        return [f"observation.size {size!r} must be an integer in 1..4096"]
    if obs.get("group", "policy") != "policy":
        return [f"observation.group {obs.get('group')!r} must be 'policy'"]
    if not isinstance(terms, list) or not terms:
        return ["observation.terms must be a non-empty list"]
    start = 0
    for i, t in enumerate(terms):
        if not (isinstance(t, dict) and isinstance(t.get("name"), str) and _int(t.get("size")) and t["size"] > 0
                and t.get("start") == start and t.get("stop") == start + t["size"]):
            return [f"observation.terms[{i}] must be {{name, start={start}, stop=start+size, size>0}}"]
        start += t["size"]
    if start != size:
        return [f"observation.terms add up to {start} values, observation.size says {size}"]
    measured = obs.get("measured_joint_pos_term")
    if measured is not None and measured not in [t["name"] for t in terms]:
        return [f"observation.measured_joint_pos_term {measured!r:.40} is not one of the terms"]
    return []


def _output_problems(meta: dict) -> list[str]:
    """``output_size`` and ``action_terms`` (absent in exports that have one action term: then the arm's size)."""
    size, terms = meta.get("output_size", meta["action"].get("size")), meta.get("action_terms")
    if not _int(size) or not 0 < size <= 64:
        return [f"output_size {size!r} must be an integer in 1..64"]
    if terms is None:
        return [] if size == meta["action"].get("size") else ["output_size differs from action.size and no "
                                                              "action_terms say what the rest is"]
    if not isinstance(terms, list) or not all(isinstance(t, dict) and isinstance(t.get("term"), str)
                                              and _int(t.get("size")) and t["size"] > 0 for t in terms):
        return ["action_terms must be a list of {term, size > 0}"]
    if sum(t["size"] for t in terms) != size:
        return [f"action_terms add up to {sum(t['size'] for t in terms)} values, output_size says {size}"]
    if terms[0]["term"] != meta["action"].get("term") or terms[0]["size"] != meta["action"].get("size"):
        return ["action_terms[0] must be the arm's term, the one `action` describes"]
    return []


def _action_problems(act: dict, default: Any) -> list[str]:
    size, joints = act.get("size"), act.get("joint_names")
    if not _int(size) or not 0 < size <= len(JOINTS):
        return [f"action.size {size!r} must be an integer in 1..{len(JOINTS)}"]
    if not isinstance(joints, list) or len(joints) != size or len(set(map(str, joints))) != size \
            or not all(j in _BY_NAME for j in joints):
        return [f"action.joint_names must be {size} distinct joints of the joint table ({list(_BY_NAME)})"]
    bad = []
    if act.get("mode", "absolute") not in ("relative", "absolute"):
        bad.append(f"action.mode {act.get('mode')!r} must be 'relative' or 'absolute'")
    if not isinstance(act.get("names"), list) or len(act["names"]) != size or not all(isinstance(n, str) for n in act["names"]):
        bad.append(f"action.names must list {size} names")
    for key in ("scale", "offset", "lower", "upper"):
        values = act.get(key)
        if not isinstance(values, list) or len(values) != size or not all(_number(v) for v in values):
            bad.append(f"action.{key} must be {size} finite numbers, got {values!r:.80}")
    step = act.get("max_step")
    if step is not None and (not _number(step) or step <= 0):
        bad.append(f"action.max_step {step!r} must be a positive number or null")
    if bad:
        return bad
    for i, name in enumerate(joints):
        j, lo, hi = _BY_NAME[name], act["lower"][i], act["upper"][i]
        if lo < j.lower - LIMIT_TOLERANCE or hi > j.upper + LIMIT_TOLERANCE or lo >= hi:
            bad.append(f"action limits of '{j.short}' [{lo:.6g}, {hi:.6g}] rad are not inside the joint table's safe box "
                       f"[{j.lower:.4f}, {j.upper:.4f}]: an export may only narrow the box")
        if act["scale"][i] <= 0:
            bad.append(f"action.scale of '{j.short}' must be positive")
    if not isinstance(default, dict) or not all(_number(default.get(j.name)) for j in JOINTS):
        bad.append(f"default_joint_pos must give a finite number for each of {list(_BY_NAME)}")
    else:
        bad += [f"default_joint_pos of '{j.short}' ({default[j.name]:.6g}) is outside the safe box" for j in JOINTS
                if not j.lower - LIMIT_TOLERANCE <= default[j.name] <= j.upper + LIMIT_TOLERANCE]
    return bad


def check_spec(meta: Any, where: str = "policy.json") -> dict[str, Any]:
    """The document if it is usable, else ``PolicyLoadError`` naming each problem and the fix."""
    bad = spec_problems(meta)
    if bad:
        more = f" (and {len(bad) - 4} more)" if len(bad) > 4 else ""
        raise PolicyLoadError(f"{where}: {'; '.join(bad[:4])}{more}; export the policy again with scripts/play.py")
    return meta


def load_spec(export_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """policy.json of an exported/ folder (or the file itself), checked; returns it and its folder."""
    path = Path(export_dir)
    meta_path = path / "policy.json" if path.is_dir() else path
    if not meta_path.exists():
        raise PolicyLoadError(f"no policy.json at {meta_path}; pass the exported/ folder written by scripts/play.py")
    try:
        meta = json.loads(read_bounded_text(meta_path, MAX_META_BYTES, "policy.json"))
    except UnsafeFileError as err:
        raise PolicyLoadError(str(err)) from None
    except ValueError as err:  # JSONDecodeError
        raise PolicyLoadError(f"{meta_path} is not valid JSON ({err}); export the policy again with scripts/play.py") from None
    return check_spec(meta, str(meta_path)), meta_path.parent
