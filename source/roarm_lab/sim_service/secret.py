"""The simulator service's session secret: every request but ``hello`` and ``ping`` must carry it.

The process that starts a service hands it over in ``ROARM_SIM_SECRET`` (or a file given with
``--secret-file``); a service started by hand with neither makes one and writes it to a file of its own,
readable by its owner only, which its ready line names. A secret file must be a regular file private to its
owner (mode 600, as ssh keys), of at least ``MIN_SECRET_CHARS`` characters (docs/sim_service.md, "Access").
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from roarm_lab.gateway.admin import MIN_TOKEN_CHARS
from roarm_lab.utils.files import UnsafeFileError, read_bounded
from roarm_lab.utils.io import atomic_write_text

SECRET_ENV = "ROARM_SIM_SECRET"
MIN_SECRET_CHARS = MIN_TOKEN_CHARS


def new_secret() -> str:
    return secrets.token_hex(32)


def check_secret(secret: str, where: str) -> str:
    """``secret`` stripped, if long enough; else ``ValueError`` naming ``where`` it came from."""
    secret = secret.strip()
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"the simulator secret in {where} has {len(secret)} characters; use at least "
                         f"{MIN_SECRET_CHARS} (e.g. `python -c \"import secrets; print(secrets.token_hex(32))\"`)")
    return secret


def write_secret_file(path: str | Path, secret: str) -> Path:
    """Write ``secret`` atomically to ``path``, readable by its owner only (mkstemp creates it with mode 600)."""
    return atomic_write_text(path, secret + "\n")


def load_secret_file(path: str | Path) -> str:
    """The secret in ``path``: a regular file (no symbolic link) of this user's, mode 600 or stricter."""
    try:
        info = os.lstat(path)
    except OSError as err:
        raise ValueError(f"secret file {path}: {err.strerror}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise ValueError(f"secret file {path} is not a regular file (a symbolic link, FIFO or folder): pass the file "
                         "itself")
    if info.st_uid != os.geteuid():
        raise ValueError(f"secret file {path} belongs to another user (uid {info.st_uid}): use a file of your own")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ValueError(f"secret file {path} is accessible to other users (mode {stat.S_IMODE(info.st_mode):o}): "
                         f"run `chmod 600 {path}`")
    try:
        text = read_bounded(path, 4096, "secret file", follow_symlinks=False).decode("utf-8", errors="replace")
    except UnsafeFileError as err:
        raise ValueError(str(err)) from None
    return check_secret(text, f"secret file {path}")


def service_secret(secret_file: str | Path | None, fallback: Path) -> tuple[str, str]:
    """The service's secret and where it is (``env:NAME`` or ``file:PATH``, as the ready line says).

    ``--secret-file``, else ``ROARM_SIM_SECRET`` (taken out of the environment, so nothing the service starts
    inherits it), else a new secret written to ``fallback``. Both at once is refused: one would be ignored.
    """
    from_env = os.environ.pop(SECRET_ENV, None)
    if secret_file is not None and from_env is not None:
        raise ValueError(f"both --secret-file and ${SECRET_ENV} are set: pass the secret one way")
    if secret_file is not None:
        return load_secret_file(secret_file), f"file:{Path(secret_file).resolve()}"
    if from_env is not None:
        return check_secret(from_env, f"${SECRET_ENV}"), f"env:{SECRET_ENV}"
    secret = new_secret()
    return secret, f"file:{write_secret_file(fallback, secret).resolve()}"
