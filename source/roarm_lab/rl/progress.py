"""A progress bar for rsl_rl training: ETA, success rate, error; the full per-iteration report goes to a file."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import torch
from rsl_rl.utils.log_writer import LogWriter
from rsl_rl.utils.logger import Logger
from tqdm import tqdm

from roarm_lab.rl.progress_record import ERROR_RECORD, SUCCESS_RECORD
from roarm_lab.utils.io import append_text
from roarm_lab.control.layout import RunFiles


def _mean(ep_extras: list[dict], key: str) -> float | None:
    values = [float(torch.as_tensor(e[key]).float().mean()) for e in ep_extras if key in e]
    return sum(values) / len(values) if values else None


class ProgressLogger(Logger):
    """rsl_rl's logger (TensorBoard and all) with its console block replaced by a tqdm bar; what rsl_rl prints
    for the record (the iteration reports, the git notes) goes to the run's console log, not the terminal."""

    def __init__(self, *args: Any, total_iterations: int, start_iteration: int = 0, show: bool = True,
                 metric_keys: tuple[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.metric_keys = metric_keys
        """(success, error): the task's logged metrics that fill the records (its profile's); None: neither."""
        self.total_iterations, self.start_iteration, self.show = total_iterations, start_iteration, show
        self._bar: tqdm | None = None
        self.after_iteration: Any = None
        """Called with the iteration after each one is logged (train.py's rollout recorder)."""
        self.latest: dict[str, float] = {}
        self._started = time.monotonic()

    @property
    def bar(self) -> tqdm:
        """Drawn at the first iteration, so the lines printed before it (the run folder) stay above it."""
        if self._bar is None:
            self._bar = tqdm(total=self.total_iterations, initial=self.start_iteration, desc="train", unit="it",
                             disable=not self.show or self.disable_logs, dynamic_ncols=True)
        return self._bar

    def resume_clock(self, records: Path) -> None:
        """Continue a resumed run's clock from its last record, so its curve against time has no jump back."""
        from roarm_lab.control.progress import records as read_records

        last = read_records(records)[-1:] if records.is_file() else []
        if last and isinstance(last[0].get("wall_time_s"), (int, float)):
            self._started -= float(last[0]["wall_time_s"])

    def to_console_log(self, text: str) -> None:
        if self.log_dir is not None and text and not self.disable_logs:
            append_text(RunFiles(Path(self.log_dir)).console, text)

    def _store_code_state(self) -> list[str]:
        report = io.StringIO()
        with contextlib.redirect_stdout(report):
            stored = super()._store_code_state()
        self.to_console_log(report.getvalue())
        return stored

    def log(self, *args: Any, **kwargs: Any) -> None:
        success_key, error_key = self.metric_keys or ("", "")
        success = _mean(self.ep_extras, success_key)
        error = _mean(self.ep_extras, error_key)
        report = io.StringIO()
        with contextlib.redirect_stdout(report):
            super().log(*args, **kwargs)
        self.to_console_log(report.getvalue())  # whole reports and records, or none: a full disk leaves no half line
        if success is not None:
            self.latest[SUCCESS_RECORD] = success
        if error is not None:
            self.latest[ERROR_RECORD] = error
        if self.rewbuffer:
            self.latest["mean_reward"] = sum(self.rewbuffer) / len(self.rewbuffer)
        self.latest["iteration"] = kwargs.get("it", args[0] if args else 0)
        self.latest["wall_time_s"] = round(time.monotonic() - self._started, 3)
        if self.log_dir is not None and not self.disable_logs:  # one JSON line per iteration: curves, panel, status
            append_text(RunFiles(Path(self.log_dir)).progress, json.dumps(self.latest) + "\n")
        postfix = {}
        if SUCCESS_RECORD in self.latest:
            postfix["success"] = f"{self.latest[SUCCESS_RECORD]:.2f}"
        if ERROR_RECORD in self.latest:
            postfix["err"] = f"{100 * self.latest[ERROR_RECORD]:.1f}cm"
        if "mean_reward" in self.latest:
            postfix["rew"] = f"{self.latest['mean_reward']:.1f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)
        if self.after_iteration is not None:
            self.after_iteration(self.latest["iteration"])

    def stop_logging_writer(self) -> None:
        """rsl_rl stops only its own writers; TensorBoard's is closed here too, so its last events reach the file
        (its thread would die with the process) and a write error (a full disk) surfaces here, in this thread."""
        if self._bar is not None:
            self._bar.close()
        super().stop_logging_writer()
        if self.writer is not None and not isinstance(self.writer, LogWriter):
            self.writer.close()

    def abandon(self) -> None:
        """After an error (a full disk): stop TensorBoard's thread, ignoring its errors, so that it writes (and
        prints) nothing once the error has been reported."""
        if self._bar is not None:
            self._bar.close()
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
