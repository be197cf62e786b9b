"""The project's folders, and the one check that every path from a caller passes: confined to the run folders.

A caller (the model, through MCP) names runs, checkpoints and exported policies. A name may be a run id or a
path; either way it is resolved (symlinks followed) and must land inside the runs root. ``..`` components,
NUL bytes and over-long strings are refused before anything touches the file system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from roarm_lab.utils.provenance import REPO_ROOT

MAX_PATH_CHARS = 1024
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class PathError(ValueError):
    """A path outside the project's run folders, or malformed; the message says what is allowed."""


@dataclass(frozen=True)
class ProjectPaths:
    root: Path = REPO_ROOT
    logs: Path = REPO_ROOT / "logs"

    @classmethod
    def at(cls, root: Path | None = None, logs: Path | None = None) -> "ProjectPaths":
        root = Path(root or REPO_ROOT).resolve()
        return cls(root, Path(logs).resolve() if logs else root / "logs")

    @property
    def runs(self) -> Path:
        """Training runs (``<runs>/<experiment>/<run>/``; exported policies live in ``<run>/exported/``)."""
        return self.logs / "rsl_rl"

    @property
    def jobs(self) -> Path:
        return self.logs / "jobs"

    @property
    def sim(self) -> Path:
        return self.logs / "sim"

    @property
    def real(self) -> Path:
        return self.logs / "real"

    @property
    def gateway(self) -> Path:
        return self.logs / "gateway"

    @property
    def mcp(self) -> Path:
        return self.logs / "mcp"

    def script(self, name: str) -> Path:
        path = self.root / "scripts" / name
        if not path.is_file():
            raise PathError(f"{path} is missing: the control plane runs the project's scripts from a source checkout "
                            "(pip install -e .)")
        return path

    def confine(self, value: str, what: str = "path") -> Path:
        """``value`` (relative to the runs root, or absolute) resolved, if it lies inside the runs root."""
        return confine(value, self.runs, what, self.root)


def confine(value: str, root: Path, what: str = "path", base: Path | None = None) -> Path:
    if not isinstance(value, str) or not value or len(value) > MAX_PATH_CHARS or "\x00" in value:
        raise PathError(f"{what} must be a non-empty path of at most {MAX_PATH_CHARS} characters")
    raw = Path(value)
    if ".." in raw.parts:
        raise PathError(f"{what} '{value}' contains '..': name a run (list_runs) or a path inside {root}")
    root = root.resolve()
    candidates = [raw] if raw.is_absolute() else [root / raw] + ([base / raw] if base is not None else [])
    inside = [r for r in (c.resolve() for c in candidates) if r == root or root in r.parents]
    if inside:
        return next((r for r in inside if r.exists()), inside[0])
    raise PathError(f"{what} '{value}' is outside the project's run folders ({root}); name a run id from list_runs "
                    "or a path inside that folder (symbolic links are followed before the check)")
