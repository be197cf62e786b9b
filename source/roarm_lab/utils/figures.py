"""Saving a matplotlib figure the project's way: a PNG written atomically, the figure closed either way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roarm_lab.utils.io import atomic_write


def save_png(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (a reader never sees half a file) and close it, also when the write fails."""
    import matplotlib.pyplot as plt

    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    finally:
        plt.close(fig)
    return Path(path)
