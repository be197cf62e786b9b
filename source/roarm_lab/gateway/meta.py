"""Reading and checking ``policy.json``: every consumer (gateway, bridge) goes through ``load_policy_meta``.

The file is input from disk, so it is checked as a whole before anything acts on it: types, sizes, finite
numbers, and above all the joint limits. The joint table (``roarm_lab.assets.joint_table``) is the authority
on the arm's safe box; an export may only narrow it, so limits outside the box are refused, not trusted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from roarm_lab.assets.joint_table import JOINTS
from roarm_lab.gateway.files import UnsafeFileError, read_bounded_text

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


def policy_meta_problems(meta: Any) -> list[str]:
    """Everything wrong with a policy.json document (empty if it is usable), each naming its field."""
    if not isinstance(meta, dict):
        return ["the document must be a JSON object"]
    bad: list[str] = []
    if meta.get("schema_version") != 1 or not _int(meta.get("schema_version")):
        bad.append(f"schema_version {meta.get('schema_version')!r} is not supported (1)")
    if not isinstance(meta.get("task"), str):
        bad.append("task must be a string")
    period = meta.get("control_period_s")
    if not _number(period) or not 0 < period <= 1.0:
        bad.append(f"control_period_s {period!r} must be a number in (0, 1] s")
    obs, act = meta.get("observation"), meta.get("action")
    if not isinstance(obs, dict) or not isinstance(act, dict):
        return bad + ["observation and action must be objects"]
    bad += _observation_problems(obs)
    bad += _action_problems(act, meta.get("default_joint_pos"))
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
    return [] if start == size else [f"observation.terms add up to {start} values, observation.size says {size}"]


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


def check_policy_meta(meta: Any, where: str = "policy.json") -> dict[str, Any]:
    """The document if it is usable, else ``PolicyLoadError`` naming each problem and the fix."""
    bad = policy_meta_problems(meta)
    if bad:
        more = f" (and {len(bad) - 4} more)" if len(bad) > 4 else ""
        raise PolicyLoadError(f"{where}: {'; '.join(bad[:4])}{more}; export the policy again with scripts/play.py")
    return meta


def load_policy_meta(export_dir: str | Path) -> tuple[dict[str, Any], Path]:
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
    return check_policy_meta(meta, str(meta_path)), meta_path.parent
