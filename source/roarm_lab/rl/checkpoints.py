"""Run folders and checkpoints: a new run folder, the newest run and model, loading one safely, and whether it fits;
which checkpoints a run keeps, and its best one.

A checkpoint is a file from disk, so it is loaded with ``weights_only=True`` (tensors, dicts, numbers and
strings; no code runs), its layout is checked, and its state dicts are handed to the algorithm directly.
rsl_rl's ``OnPolicyRunner.load`` would unpickle anything; ``RoArmRunner.load`` replaces it with this path.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
import yaml

from roarm_lab.control.layout import BEST_RECORD, CHECKPOINT, RunFiles
from roarm_lab.utils.io import atomic_write_json



class CheckpointError(ValueError):
    pass


def create_run_dir(parent: Path, name: str) -> Path:
    """A new, empty run folder ``parent/name`` (``name_2``, ``name_3``, ... if taken), created exclusively.

    Two runs started in the same second with the same name get two folders, never one shared folder.
    """
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = parent / (name if n == 1 else f"{name}_{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise CheckpointError(f"could not create a new run folder for {parent / name}: 999 taken; pick another --run_name")


def latest_run_dir(experiment_dir: Path) -> Path:
    """The run whose newest checkpoint was written last (not the last name in sort order)."""
    runs = [(os.stat(latest_checkpoint(p)).st_mtime_ns, p.name, p) for p in experiment_dir.glob("*")
            if p.is_dir() and RunFiles(p).checkpoints()]
    if not runs:
        raise CheckpointError(f"no run with a checkpoint under {experiment_dir}; train first or pass a path")
    return max(runs)[2]


def latest_checkpoint(run_dir: Path) -> Path:
    found = RunFiles(run_dir).checkpoints()
    if not found:
        raise CheckpointError(f"no model_<N>.pt in {run_dir}")
    return found[0]


def checkpoint_score(metrics: dict[str, Any]) -> tuple[float, float] | None:
    """How good the checkpoint that ends an iteration is: its success rate, then the lower hand error; None before
    any episode finished. The success rate is the task's goal (``SUCCESS_KEY``), read from the records that
    ``progress.jsonl`` holds; the reward is not, since its curriculum changes its scale during a run."""
    rate, error = metrics.get("success_rate"), metrics.get("position_error_m")
    error = math.inf if error is None else error
    if not _finite(rate) or not (_finite(error) or error == math.inf):
        return None
    return float(rate), -float(error)


def read_best(run_dir: Path) -> dict[str, Any] | None:
    """``best.json`` of a run, checked (a plain name of a model_<N>.pt, finite figures), or None."""
    from roarm_lab.utils.files import UnsafeFileError, read_bounded_text

    try:
        best = json.loads(read_bounded_text(RunFiles(run_dir).best, 1 << 16, BEST_RECORD))
    except (UnsafeFileError, ValueError):
        return None
    ok = isinstance(best, dict) and isinstance(best.get("checkpoint"), str) and CHECKPOINT.fullmatch(best["checkpoint"])
    return best if ok and checkpoint_score(best) is not None else None


def best_checkpoint(run_dir: Path) -> Path | None:
    """The run's best checkpoint (``best.json``), if it names one that is there: for play, evaluation and export."""
    best = read_best(run_dir)
    path = run_dir / best["checkpoint"] if best else None
    return path if path is not None and path.is_file() else None


def keep_newest_and_best(saved: Path, iteration: int, metrics: dict[str, Any], keep: int) -> str | None:
    """After ``saved`` (a model_<N>.pt) was written whole: record it in ``best.json`` if it is the best so far, then
    delete the run's model_<N>.pt files but the newest ``keep`` (by N: the one ``--resume`` loads is among them),
    the best and ``saved``; ``keep`` 0 deletes none. Returns the best's name.

    Crash-safe in this order: a kill at any point leaves only whole files (checkpoints and best.json are renamed
    into place), and best.json names a file that is there, since only files it does not name are deleted, after it
    was written. Files named otherwise (``my_policy.pt``, ``model_7_backup.pt``) are never touched.
    """
    run_dir = saved.parent
    best = read_best(run_dir)
    if best and (best["checkpoint"] == saved.name or not (run_dir / best["checkpoint"]).is_file()):
        best = None  # overwritten (a resume from an earlier checkpoint) or deleted by hand: its figures are gone
    score = checkpoint_score(metrics)
    if score is not None and (best is None or score >= checkpoint_score(best)):
        best = {"checkpoint": saved.name, "iteration": iteration, "metric": "success_rate",
                "success_rate": score[0], "position_error_m": metrics.get("position_error_m")}
        atomic_write_json(RunFiles(run_dir).best, best)
    if keep > 0:
        numbered = sorted(((int(m.group(1)), p) for p in run_dir.iterdir() if (m := CHECKPOINT.fullmatch(p.name))),
                          reverse=True)
        spared = {saved.name, best["checkpoint"] if best else saved.name}
        for _, path in numbered[keep:]:
            if path.name not in spared:
                path.unlink(missing_ok=True)
    return best["checkpoint"] if best else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file without running code; a missing, unreadable or odd file is an error naming it."""
    path = Path(path)
    if not path.is_file():  # also refuses a FIFO or a device, which torch.load would block on or read forever
        raise CheckpointError(f"checkpoint not found: {path} (pass a model_<N>.pt file)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or code-carrying file
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"checkpoint {path} cannot be loaded safely ({type(err).__name__}: {first[:200]}); "
                              "only plain rsl_rl checkpoints (tensors, numbers, strings) are accepted") from None
    problem = _layout_problem(data)
    if problem:
        raise CheckpointError(f"{path} is not an rsl_rl checkpoint ({problem})")
    return data


def _layout_problem(data: Any) -> str | None:
    if not isinstance(data, dict) or "actor_state_dict" not in data:
        return "no 'actor_state_dict'"
    for key in ("actor_state_dict", "critic_state_dict"):
        part = data.get(key, {})
        if not isinstance(part, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in part.items()):
            return f"'{key}' must map names to tensors"
    if "iter" in data and (not isinstance(data["iter"], int) or isinstance(data["iter"], bool) or data["iter"] < 0):
        return f"'iter' is {data['iter']!r}, not a non-negative integer"
    if data.get("infos") is not None and not isinstance(data["infos"], dict):
        return "'infos' must be a mapping"
    return None


def restore(alg: Any, checkpoint: dict[str, Any], path: str | Path, load_cfg: dict[str, bool] | None = None) -> None:
    """Put a loaded checkpoint into an rsl_rl algorithm, after checking every tensor's name and shape.

    A checkpoint of another network shape is refused here, in one line, before anything is written.
    """
    current = alg.save()
    parts = [k for k in ("actor", "critic") if (load_cfg or {"actor": True, "critic": True}).get(k)]
    for part in parts:
        want, have = current[f"{part}_state_dict"], checkpoint.get(f"{part}_state_dict")
        if have is None:
            raise CheckpointError(f"checkpoint {path} has no {part} network")
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        if missing or extra:
            raise CheckpointError(f"checkpoint {path}: the {part} network differs from this config (missing "
                                  f"{missing[:3]}, unexpected {extra[:3]}); use the run's own agent settings")
        for name, tensor in want.items():
            if tuple(have[name].shape) != tuple(tensor.shape):
                raise CheckpointError(f"checkpoint {path}: {part} {name} has shape {list(have[name].shape)}, this "
                                      f"config builds {list(tensor.shape)}; use the run's own agent settings "
                                      "(agent.actor.hidden_dims, ...) or start a new run")
    try:
        alg.load(checkpoint, load_cfg, True)
    except (RuntimeError, KeyError, ValueError) as err:  # e.g. an optimizer state of another layout
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} does not fit this config ({first[:200]})") from None


def check_compatible(checkpoint: dict[str, Any], path: str | Path, task: str, obs_dim: int, action_dim: int) -> None:
    """Refuse a checkpoint trained for another task or with other observation/action sizes, saying which."""
    infos = checkpoint.get("infos") or {}
    if infos.get("task") and infos["task"] != task:
        raise CheckpointError(f"checkpoint {path} was trained on '{infos['task']}', not '{task}'")
    weights = [v for k, v in checkpoint["actor_state_dict"].items() if k.startswith("mlp.") and k.endswith("weight")]
    if weights:
        if weights[0].shape[1] != obs_dim:
            raise CheckpointError(f"checkpoint {path} expects {weights[0].shape[1]} observations, task '{task}' "
                                  f"gives {obs_dim}")
        if weights[-1].shape[0] != action_dim:
            raise CheckpointError(f"checkpoint {path} outputs {weights[-1].shape[0]} actions, task '{task}' "
                                  f"takes {action_dim}")


def _class_names(node: Any) -> set[str]:
    if isinstance(node, dict):
        names = {node["class_name"]} if isinstance(node.get("class_name"), str) else set()
        return names.union(*(_class_names(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_class_names(v) for v in node))
    return set()


def run_network_settings(path: Path, train_cfg: dict[str, Any]) -> dict[str, Any]:
    """The networks a run was trained with (``actor``, ``critic``, ``obs_groups`` of its agent.yaml), checked.

    rsl_rl imports and calls every ``class_name`` it is given, so a run's file may only name the classes the
    task's own config names; the shapes must be plain lists of sizes.
    """
    from roarm_lab.utils.files import UnsafeFileError, read_bounded_text

    try:
        saved = yaml.safe_load(read_bounded_text(path, 1 << 20, "agent.yaml"))
    except (UnsafeFileError, yaml.YAMLError) as err:
        raise CheckpointError(f"{path} cannot be read ({str(err).splitlines()[0]}); pass --checkpoint from a run "
                              "folder written by train.py") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path} is not a mapping of agent settings")
    taken: dict[str, Any] = {}
    for key in ("actor", "critic", "obs_groups"):
        if key not in saved:
            continue
        value, bad = saved[key], None
        if key == "obs_groups":
            if not (isinstance(value, dict) and all(isinstance(v, list) and all(isinstance(g, str) for g in v)
                                                    for v in value.values())):
                bad = "must map names to lists of observation groups"
        elif not isinstance(value, dict):
            bad = "must be a mapping"
        elif _class_names(value) - _class_names(train_cfg.get(key)):
            bad = (f"names {sorted(_class_names(value) - _class_names(train_cfg.get(key)))}; only the task's own "
                   f"classes {sorted(_class_names(train_cfg.get(key)))} are built from a run's files")
        elif not _sizes(value.get("hidden_dims", [])):
            bad = f"hidden_dims {value.get('hidden_dims')!r:.60} must be a list of up to 16 sizes in 1..4096"
        if bad:
            raise CheckpointError(f"{path}: {key} {bad}")
        taken[key] = value
    return taken


def _sizes(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= 16 and all(
        isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in value)
