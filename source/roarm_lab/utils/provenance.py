"""Where a result came from: the git commit of the project and a stable hash of a configuration."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from roarm_lab.embedded.configclass import to_dict

REPO_ROOT = Path(__file__).resolve().parents[3]


def git_hash() -> str:
    """The commit of the project checkout (with ``-dirty`` if it has local changes), or ``unknown``."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_hash(cfg: Any) -> str:
    """sha256 (16 hex digits) of the config's canonical JSON: equal configs hash equal across runs."""
    text = json.dumps(to_dict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
