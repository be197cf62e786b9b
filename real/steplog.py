"""The bridge's step log: one record per control step, saved atomically as npz (and a tracking plot).

Records are kept in memory and the whole file is rewritten atomically every few seconds and at the end,
so a crash or a pulled cable loses no record that was saved, and a reader never sees half a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from roarm_lab.utils.io import atomic_write


class StepLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._rows: dict[str, list[Any]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, **fields: Any) -> None:
        if self._rows and set(fields) != set(self._rows):
            raise KeyError(f"step record fields changed: {sorted(set(fields) ^ set(self._rows))}")
        for key, value in fields.items():
            self._rows.setdefault(key, []).append(np.array(value, copy=True))
        self._count += 1

    def last_error(self) -> float:
        errors = self._rows.get("error", [])
        return float(errors[-1]) if errors else float("nan")

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: np.stack(values) for key, values in self._rows.items()}

    def save(self) -> Path | None:
        if not self._count:
            return None
        data = self.arrays()

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **data)

        return atomic_write(self.path, write)


def plot_tracking(data: dict[str, np.ndarray], path: str | Path, success_m: float) -> Path | None:
    """Hand-to-target distance over time, target switches dashed, hold steps shaded."""
    if not len(data.get("t", [])):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from roarm_lab.utils.io import atomic_write as write_atomic

    t, err = data["t"], data["error"] * 100.0
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(t, err, lw=1.0, label="hand to target")
    ax.axhline(success_m * 100.0, color="g", ls=":", lw=1.0, label=f"{success_m * 100:.0f} cm")
    for s in t[1:][np.diff(data["target_index"]) != 0]:
        ax.axvline(s, color="0.7", ls="--", lw=0.6)
    hold = data["stale"] | data["no_action"]
    if hold.any():
        ax.fill_between(t, 0, 1, where=hold, transform=ax.get_xaxis_transform(), color="r", alpha=0.15,
                        label="holding (stale feedback / no action)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("error (cm)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return Path(path)
