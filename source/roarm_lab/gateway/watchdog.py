"""The deadline watchdog: a thread that sleeps until the earliest unanswered deadline and then hands it back.

The server keeps its requests; this keeps their deadlines (a heap of ``(deadline, tie, key)``) and the thread.
When the earliest deadline has passed, the thread calls ``on_due``, which takes the server's lock, answers the
expired requests with the safe action and serves the socket while the policy is still running. The heap is
only touched under the server's lock; ``earliest`` is read without it (a float, written atomically).
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from typing import Any, Callable, Hashable, Iterator


class DeadlineWatchdog:
    def __init__(self, idle_wake_s: float, on_due: Callable[[], None], on_error: Callable[[Exception], None]):
        """``idle_wake_s``: with nothing due sooner, look again after this long (one default deadline), so that
        a request with the default deadline never has to wake the thread."""
        self._idle_wake_s = idle_wake_s
        self._on_due = on_due
        self._on_error = on_error
        self._heap: list[tuple[float, int, Hashable]] = []
        self._tie = itertools.count()
        self.earliest = math.inf
        self._wake = math.inf  # when the thread will look next
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="gateway-watchdog", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ under the server's lock
    def add(self, deadline: float, key: Hashable) -> None:
        heapq.heappush(self._heap, (deadline, next(self._tie), key))
        if deadline < self.earliest:
            self.earliest = deadline
        if deadline < self._wake:  # the thread sleeps past this one: wake it
            with self._cond:
                self._cond.notify()

    def pop_due(self, now: float) -> Iterator[Hashable]:
        """Keys whose deadline is ``now`` or earlier (some may be answered already: the caller checks)."""
        while self._heap and self._heap[0][0] <= now:
            yield heapq.heappop(self._heap)[2]

    def refresh(self, is_live: Callable[[Any], bool]) -> None:
        """Drop answered entries from the top and republish the earliest live deadline."""
        while self._heap and not is_live(self._heap[0][2]):
            heapq.heappop(self._heap)
        self.earliest = self._heap[0][0] if self._heap else math.inf

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while not self._closed:
            try:
                self._once()
            except Exception as err:  # the watchdog must outlive any bug in what it calls
                self._on_error(err)
                time.sleep(0.001)

    def _once(self) -> None:
        with self._cond:
            now = time.monotonic()
            due = self.earliest
            if due > now:
                self._wake = min(due, now + self._idle_wake_s)
                self._cond.wait(self._wake - now)
                self._wake = math.inf
                return
        if not self._closed:
            self._on_due()

    def close(self, timeout: float = 2.0) -> None:
        self._closed = True
        with self._cond:
            self._cond.notify()
        self._thread.join(timeout)
