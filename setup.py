"""Package discovery for the wheel: every Python package under the folders mapped into ``roarm_lab``.

The top-level folders keep the design card's names (``tasks``, ``agents``, ``real``, ``mcp_server``,
``configs``) and install as ``roarm_lab.tasks`` and so on. Packages are found by walking those folders, so a
new ``tasks/lift/`` ships in the wheel without anyone listing it (``tests/test_packaging.py`` builds one). A folder
of data files inside a package (``assets/data``, ``panel/static``) is a package too, as setuptools expects of
anything Python could import; which of its files ship is ``package-data`` in ``pyproject.toml``.
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
        for folder_path in sorted(p for p in [root, *root.rglob("*")] if p.is_dir()):
            parts = folder_path.relative_to(root).parts
            if "__pycache__" in parts or any(part.startswith(".") for part in parts):
                continue
            is_package = (folder_path / "__init__.py").is_file()
            is_data_in_package = (folder_path.parent / "__init__.py").is_file() and any(
                f.is_file() and f.suffix != ".py" for f in folder_path.iterdir())
            if is_package or is_data_in_package:
                found.append(".".join((name, *parts)))
    return found


setup(packages=find_packages(), package_dir=PACKAGE_DIRS)
