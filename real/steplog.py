"""The bridge's step log: one record per control step, saved atomically as npz (and a tracking plot).

Every few seconds the records since the last checkpoint are sealed into one part file
(``steps.parts/00000.npz``, ...), written atomically by a writer thread: the control loop never touches
the disk, and a checkpoint costs the same at minute 10 as at second 5 (rewriting the whole log from the
control thread stalled a 10-minute run by up to 0.36 s every 5 s). At the end the parts are merged into
``steps.npz`` and removed. After a crash the parts remain: ``load_step_log`` reads either form.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from roarm_lab.utils.figures import save_png
from roarm_lab.utils.io import atomic_write

log = logging.getLogger(__name__)
WRITER_JOIN_TIMEOUT_S = 10.0


def _write_npz(path: Path, data: dict[str, np.ndarray]) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **data)

    return atomic_write(path, write)


def _concat(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]} if chunks else {}


class StepLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.parts_dir = self.path.with_suffix(".parts")
        self._rows: dict[str, list[Any]] = {}
        self._chunks: list[dict[str, np.ndarray]] = []
        self._count = 0
        self._queue: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None
        self._warned = False

    def __len__(self) -> int:
        return self._count

    def append(self, **fields: Any) -> None:
        known = self._rows or (self._chunks[0] if self._chunks else {})
        if known and set(fields) != set(known):
            raise KeyError(f"step record fields changed: {sorted(set(fields) ^ set(known))}")
        for key, value in fields.items():
            self._rows.setdefault(key, []).append(np.array(value, copy=True))
        self._count += 1

    def last_error(self) -> float:
        if self._rows.get("error"):
            return float(self._rows["error"][-1])
        return float(self._chunks[-1]["error"][-1]) if self._chunks else float("nan")

    def _seal(self) -> dict[str, np.ndarray] | None:
        if not self._rows:
            return None
        chunk = {key: np.stack(values) for key, values in self._rows.items()}
        self._rows = {}
        self._chunks.append(chunk)
        return chunk

    def arrays(self) -> dict[str, np.ndarray]:
        current = {key: np.stack(values) for key, values in self._rows.items()}
        return _concat(self._chunks + ([current] if current else []))

    def checkpoint(self) -> None:
        """Seal the records since the last checkpoint; the writer thread saves them as the next part file."""
        if self._write_error is not None and not self._warned:
            # the records stay in memory and save() writes them all: warn, keep the arm under control
            log.warning("step log part could not be written to %s (%s); records are kept for the final save",
                        self.parts_dir, self._write_error)
            self._warned = True
        chunk = self._seal()
        if chunk is None:
            return
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_parts, name="steplog-writer", daemon=True)
            self._writer.start()
        self._queue.put((len(self._chunks) - 1, chunk))

    def _write_parts(self) -> None:
        while (item := self._queue.get()) is not None:
            index, chunk = item
            try:
                _write_npz(self.parts_dir / f"{index:05d}.npz", chunk)
            except Exception as err:  # warned about at the next checkpoint; save() retries from memory
                self._write_error = err

    def save(self) -> Path | None:
        """Merge every record into ``steps.npz`` (atomically), then drop the part files."""
        self._seal()
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=WRITER_JOIN_TIMEOUT_S)  # a hung disk must not hang the bridge's exit
            self._writer = None
        if not self._count:
            return None
        path = _write_npz(self.path, _concat(self._chunks))
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        return path


def load_step_log(path: str | Path) -> dict[str, np.ndarray]:
    """A run's records: ``steps.npz``, or after a crash the part files the run had checkpointed."""
    path = Path(path)
    if path.is_file():
        with np.load(path) as data:
            return dict(data)
    parts = sorted(path.with_suffix(".parts").glob("[0-9]*.npz"))
    if not parts:
        raise FileNotFoundError(f"no step log at {path} and no part files in {path.with_suffix('.parts')}")
    chunks = []
    for part in parts:
        with np.load(part) as data:
            chunks.append(dict(data))
    return _concat(chunks)


def plot_tracking(data: dict[str, np.ndarray], path: str | Path, success_m: float) -> Path | None:
    """Hand-to-target distance over time, target switches dashed, hold steps shaded."""
    if not len(data.get("t", [])):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    t, err = data["t"], data["error"] * 100.0
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(t, err, lw=1.0, label="hand to target")
    ax.axhline(success_m * 100.0, color="g", ls=":", lw=1.0, label=f"{success_m * 100:.0f} cm")
    for s in t[1:][np.diff(data["target_index"]) != 0]:
        ax.axvline(s, color="0.7", ls="--", lw=0.6)
    hold = data["stale"] | data["no_action"] | data.get("fault", np.zeros_like(data["stale"]))  # older logs: none
    if hold.any():
        ax.fill_between(t, 0, 1, where=hold, transform=ax.get_xaxis_transform(), color="r", alpha=0.15,
                        label="holding (stale or implausible feedback / no action)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("error (cm)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)
