"""The gateway's JSONL event log: one JSON object per line, size-based rotation, rotated files gzipped."""

from __future__ import annotations

import gzip
import json
import logging
import logging.handlers
import os
import shutil
import time
from pathlib import Path
from typing import Any


def _gzip_rotator(source: str, dest: str) -> None:
    with open(source, "rb") as src, gzip.open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.remove(source)


class EventLog:
    """Append events (with a correlation id) to ``path``; rotate at ``max_bytes`` keeping ``backups`` gzips."""

    def __init__(self, path: str | Path | None, max_bytes: int = 10 * 1024 * 1024, backups: int = 5):
        self.path = Path(path) if path else None
        self._logger = logging.getLogger(f"roarm_lab.gateway.events.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(self.path, maxBytes=max_bytes, backupCount=backups,
                                                           encoding="utf-8")
            handler.namer = lambda name: name + ".gz"
            handler.rotator = _gzip_rotator
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._logger.addHandler(handler)

    def write(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        record = {"ts": time.time(), "event": event, **fields}
        self._logger.info(json.dumps(record, default=str, separators=(",", ":")))

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)
