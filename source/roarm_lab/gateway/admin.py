"""Admin credentials and reload folders of the gateway.

Admin requests (``reload``, ``shutdown``) are off unless the server is given a token file; then each admin
request must carry that token. The file must be private to its owner (mode 600, as ssh keys): any other
local user who can read it could reload the policy that drives the arm. A reload only reads an export
folder that lies, symlinks resolved, inside one of the allowed ``reload_roots``.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from roarm_lab.utils.files import UnsafeFileError, read_bounded
from roarm_lab.policy.spec import PolicyLoadError
from roarm_lab.utils.io import atomic_write_text

MIN_TOKEN_CHARS = 32


def new_admin_token(path: str | Path) -> Path:
    """Write a fresh random token (64 hex characters) to ``path``, readable by its owner only."""
    return atomic_write_text(path, secrets.token_hex(32) + "\n")  # mkstemp creates it with mode 600


def load_admin_token(path: str | Path) -> bytes:
    """The token in ``path``; refused if the file is readable or writable by group or others, or too short."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise ValueError(f"admin token file {path}: {err.strerror}; make one with "
                         f"`roarm-gateway --new-admin-token {path}`") from None
    if stat.S_IMODE(mode) & 0o077:
        raise ValueError(f"admin token file {path} is accessible to other users (mode {stat.S_IMODE(mode):o}): "
                         f"run `chmod 600 {path}`")
    try:
        token = read_bounded(path, 4096, "admin token file").strip()
    except UnsafeFileError as err:
        raise ValueError(str(err)) from None
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"admin token file {path} holds {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
                         f"(`roarm-gateway --new-admin-token {path}` writes 64)")
    return token


def token_matches(expected: bytes, presented: Any) -> bool:
    """Constant-time comparison; anything but a string is a mismatch."""
    return isinstance(presented, str) and hmac.compare_digest(expected, presented.strip().encode())


def allowed_export(path: str, roots: list[Path]) -> Path:
    """``path`` resolved, if it lies inside one of ``roots`` (resolved); else ``PolicyLoadError``."""
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        raise PolicyLoadError(f"{path} does not exist") from None
    if not any(real.is_relative_to(root) for root in roots):
        allowed = [str(r) for r in roots] or "none"
        raise PolicyLoadError(f"{path} is not inside an allowed reload folder (allowed: {allowed}); start the gateway "
                              "with --reload-root DIR to allow one")
    return real
