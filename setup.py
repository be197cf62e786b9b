"""Package discovery for the wheel: every Python package under the folders mapped into ``roarm_lab``.

The top-level folders keep the design card's names (``tasks``, ``agents``, ``real``, ``mcp_server``,
``configs``) and install as ``roarm_lab.tasks`` and so on. Packages are found by walking those folders, so a
new ``tasks/lift/`` ships in the wheel without anyone listing it (``tests/test_packaging.py`` builds one).
Everything else about the project is in ``pyproject.toml``.
"""

from pathlib import Path

from setuptools import setup

PACKAGE_DIRS = {
    "roarm_lab": "source/roarm_lab",
    "roarm_lab.tasks": "tasks",
    "roarm_lab.agents": "agents",
    "roarm_lab.real": "real",
    "roarm_lab.mcp_server": "mcp_server",
    "roarm_lab.configs": "configs",
}


def find_packages() -> list[str]:
    here = Path(__file__).resolve().parent
    found = []
    for name, folder in PACKAGE_DIRS.items():
        root = here / folder
        for init in sorted(root.rglob("__init__.py")):
            parts = init.parent.relative_to(root).parts
            if "__pycache__" not in parts:
                found.append(".".join((name, *parts)))
    return found


setup(packages=find_packages(), package_dir=PACKAGE_DIRS)
