"""Robot descriptions a caller names by file: a USD inside the project folder, inspected against the joint table.

A face passes the caller's string as it came; the path is resolved here (relative to the project root, symlinks
followed) and must land inside that root, so a chat cannot make the server open files elsewhere on the machine.
Inspection only reads the stage (``roarm_lab.assets.usd_inspect``); nothing is loaded into the simulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roarm_lab.control.errors import ControlError
from roarm_lab.control.layout import MAX_PATH_CHARS, PathError, ProjectPaths
from roarm_lab.control.runs import rel_path


def usd_in_project(paths: ProjectPaths, value: str, what: str = "usd_path") -> Path:
    """``value`` (relative to the project root, or absolute) resolved with symlinks followed, if it lies inside the
    project root; else PathError naming that folder."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_PATH_CHARS or "\x00" in value:
        raise PathError(f"{what} must be a non-empty path of at most {MAX_PATH_CHARS} characters")
    root = paths.root.resolve()
    raw = Path(value)
    resolved = (raw if raw.is_absolute() else root / raw).resolve()
    if resolved != root and root not in resolved.parents:
        raise PathError(f"{what} '{value}' resolves to {resolved}, outside the project folder {root}: copy the USD "
                        "into it (e.g. under logs/) and name it relative to that folder")
    if not resolved.is_file():
        raise PathError(f"{what} '{value}' is not a file in the project folder {root}: name a .usd, .usda, .usdc "
                        "or .usdz file relative to that folder")
    return resolved


MAX_LAYERS = 64


def check_layers(paths: ProjectPaths, path: Path) -> None:
    """Every layer the stage would compose (sublayers, references, payloads, recursively) is a regular file inside
    the project folder: a USD can name any path, and opening the stage would read (or block on) it."""
    try:
        from pxr import Sdf
    except ImportError:
        return  # the inspector says how to install it
    root = paths.root.resolve()
    seen: set[Path] = set()
    todo = [path]
    while todo:
        layer_path = todo.pop()
        if layer_path in seen:
            continue
        seen.add(layer_path)
        if len(seen) > MAX_LAYERS:
            raise ControlError(f"{rel_path(paths, path)} composes more than {MAX_LAYERS} layers; inspect it by hand")
        if not layer_path.is_file():
            raise ControlError(f"{rel_path(paths, path)} composes {layer_path}, which is not a regular file")
        layer = Sdf.Layer.FindOrOpen(str(layer_path))
        if layer is None:
            raise ControlError(f"{rel_path(paths, layer_path)} is not a USD layer")
        for asset in layer.GetCompositionAssetDependencies():
            target = Path(asset) if Path(asset).is_absolute() else layer_path.parent / asset
            resolved = target.resolve()
            if resolved != root and root not in resolved.parents:
                raise ControlError(f"{rel_path(paths, path)} composes {asset}, outside the project folder {root}: "
                                   "only layers inside it are opened")
            todo.append(resolved)


def inspect_robot_usd(paths: ProjectPaths, value: str) -> dict[str, Any]:
    """The USD's joints, bodies and their comparison with the joint table, compact, for a face to show."""
    from roarm_lab.assets.usd import UsdUnavailable
    from roarm_lab.assets.usd_inspect import UsdInspectError, inspect_usd

    path = usd_in_project(paths, value)
    check_layers(paths, path)
    try:
        inspection = inspect_usd(path)
    except (UsdInspectError, UsdUnavailable) as err:
        raise ControlError(str(err).replace(str(paths.root.resolve()) + "/", "")) from None
    return {"usd_path": rel_path(paths, path), **inspection.summary()}
