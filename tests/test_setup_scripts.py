"""How the setup scripts find Python 3.12 (scripts/lib/find_python.sh), in the shells CI and users have.

The Isaac Lab and Kit venvs need Python 3.12 while the default one is 3.11. CI once failed with exit 127 because a
pyenv shim named python3.12 was on PATH, the script took it, and pyenv refused to run it (no PYENV_VERSION). The
finder must return only an interpreter that runs and is the right version, and fail cleanly when there is none.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FINDER = ROOT / "scripts" / "lib" / "find_python.sh"


def find_python(version: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/bash", "-c", f'source "{FINDER}"; find_python {version}'], env=env, capture_output=True,
                          text=True, timeout=60)


def version_of(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_a_shim_that_refuses_to_run_is_not_taken(tmp_path):
    # a version no machine has, so that only the refusing shim answers to its name
    shim = tmp_path / "bin" / "python3.99"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.99: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    env = {"HOME": str(tmp_path), "PATH": f"{shim.parent}:/bin", "PYENV_ROOT": str(tmp_path / "no-pyenv")}
    found = find_python("3.99", env)
    assert found.returncode == 1 and found.stdout == ""


def test_a_named_interpreter_of_the_wrong_version_is_refused(tmp_path):
    env = {"HOME": str(tmp_path), "PATH": os.environ["PATH"], "PYTHON_BIN": sys.executable}
    wrong = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"
    assert find_python(wrong, env).returncode == 1
    right = find_python("%d.%d" % sys.version_info[:2], env)
    assert right.returncode == 0 and right.stdout.strip() == sys.executable


def test_pyenv_versions_are_found_without_the_pyenv_command_on_path(tmp_path):
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    if not list(pyenv_root.glob("versions/3.12.*/bin/python")):
        pytest.skip(f"no Python 3.12 under {pyenv_root}/versions")
    by_root = {"PATH": "/usr/bin:/bin", "PYENV_ROOT": str(pyenv_root)}
    by_shims_on_path = {"PATH": f"{pyenv_root}/shims:/usr/bin:/bin"}  # no HOME, no PYENV_ROOT: as some CI shells
    for env in (by_root, by_shims_on_path):
        found = find_python("3.12", env)
        assert found.returncode == 0, (env, found.stderr)
        assert version_of(found.stdout.strip()) == "3.12"
