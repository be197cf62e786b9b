"""``hash_mismatch_events.jsonl``: one JSON line per config-hash mismatch, beside the event log, bounded.

The event log rotates and drops per-request events beyond its rate; this file keeps the evidence that a client
ran with another configuration than the export (when, which client, both hashes, the request id). A client
that sends a wrong hash at 1 kHz must not fill the disk: each client gets ``per_client`` lines a window (a
minute), all clients together ``per_window``; what is held back is one ``suppressed`` line with the counts
when the window ends. The file stops growing at ``max_bytes`` (one ``file_full`` line says so).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from roarm_lab.utils.io import append_text

FILE_NAME = "hash_mismatch_events.jsonl"
MAX_FIELD_CHARS = 64
"""A hash, a client name or an id is cut to this many characters: a line stays small whatever a client sends."""
MAX_SUPPRESSED_CLIENTS = 64
"""A ``suppressed`` line names at most this many clients; the rest are one ``other_clients`` count."""


def forensic_path(event_log: str | Path | None) -> Path | None:
    """The file beside the event log (None when the gateway logs no events)."""
    return Path(event_log).parent / FILE_NAME if event_log else None


def utc_text(ts: float) -> str:
    """ISO 8601 UTC, to the millisecond: what a person compares with other logs."""
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def safe_value(value: Any) -> Any:
    """A request id as JSON can hold it: numbers and short strings as they are, anything else as a short repr."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else str(value)[:MAX_FIELD_CHARS]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value[:MAX_FIELD_CHARS]
    return repr(value)[:MAX_FIELD_CHARS]


class HashMismatchLog:
    """Append mismatch records to ``path`` within the per-client, per-window and size bounds (see the module)."""

    def __init__(self, path: Path | None, per_client: int = 10, per_window: int = 120, max_bytes: int = 10 * 1024 * 1024,
                 window_s: float = 60.0, on_error: Callable[[str], None] | None = None):
        self.path = path
        self.per_client = per_client
        self.per_window = per_window
        self.max_bytes = max_bytes
        self.window_s = window_s
        self._on_error = on_error
        self._size: int | None = None  # read from the file at the first write
        self._full = False
        self.write_errors = 0
        self.lines = 0
        self._reset_window(time.monotonic())

    def _reset_window(self, now: float) -> None:
        self._window_start = now
        self._written: Counter[str] = Counter()
        self._window_lines = 0
        self._suppressed: Counter[str] = Counter()
        self._suppressed_other = 0

    def record(self, client: str, name: str, expected: str, got: Any, request_id: Any, seq: Any,
               now: float | None = None) -> bool:
        """One mismatch; True if it was written (False: held back by a bound, counted, or no file)."""
        if self.path is None:
            return False
        now = time.monotonic() if now is None else now
        self.roll(now)
        if self._written[client] >= self.per_client or self._window_lines >= self.per_window:
            self._hold_back(client)
            return False
        ts = time.time()
        written = self._append({"ts": ts, "time": utc_text(ts), "event": "hash_mismatch", "client": client,
                                "name": name[:MAX_FIELD_CHARS], "expected_hash": str(expected)[:MAX_FIELD_CHARS],
                                "client_hash": str(got)[:MAX_FIELD_CHARS], "id": safe_value(request_id),
                                "seq": safe_value(seq)})
        if written:
            self._written[client] += 1
            self._window_lines += 1
        return written

    def _hold_back(self, client: str) -> None:
        if client in self._suppressed or len(self._suppressed) < MAX_SUPPRESSED_CLIENTS:
            self._suppressed[client] += 1
        else:
            self._suppressed_other += 1

    def roll(self, now: float | None = None, force: bool = False) -> None:
        """End the window if it is over (or ``force``): write the held-back counts, start a new one."""
        now = time.monotonic() if now is None else now
        if not force and now - self._window_start < self.window_s:
            return
        held = sum(self._suppressed.values()) + self._suppressed_other
        if held:
            ts = time.time()
            self._append({"ts": ts, "time": utc_text(ts), "event": "suppressed", "window_s": self.window_s,
                          "count": held, "by_client": dict(self._suppressed), "other_clients": self._suppressed_other,
                          "limits": {"per_client": self.per_client, "per_window": self.per_window}})
        self._reset_window(now)

    def close(self) -> None:
        """Write what the current window held back (the gateway stops)."""
        self.roll(force=True)

    def _append(self, record: dict[str, Any]) -> bool:
        """One line, whole or not at all (``append_text``); never past ``max_bytes`` but for one ``file_full``."""
        if self._full:
            return False
        line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        try:
            if self._size is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._size = self.path.stat().st_size if self.path.exists() else 0
            if self._size + len(line) > self.max_bytes:
                self._full = True
                line = json.dumps({"ts": record["ts"], "time": record["time"], "event": "file_full",
                                   "max_bytes": self.max_bytes}, separators=(",", ":")) + "\n"
                append_text(self.path, line)
                self._size += len(line)
                return False
            append_text(self.path, line)
        except OSError as err:
            self.write_errors += 1
            if self.write_errors == 1 and self._on_error is not None:
                self._on_error(f"cannot append to {self.path} ({err.strerror or err}): hash mismatches are still "
                               "flagged in replies and the event log")
            return False
        self._size += len(line)
        self.lines += 1
        return True
