"""The panel's controller inside Kit: what the omni.ui window shows and the actions its buttons start.

It holds no logic of its own: the state is the panel server's ``/api/state`` and every action is the server's
(``POST /api/action/<name>``), so the Kit panel and the browser panel show the same jobs and do the same things.
Everything here is asyncio (no omni imports): ``due(now)`` tells the update loop when to poll, the returned
coroutine runs on Kit's loop, and the results land in attributes the view reads.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Awaitable

from roarm_lab_panel.client import PanelClient, PanelRefused, PanelUnavailable

ACTIVE = ("starting", "running")


class PanelController:
    def __init__(self, url: str, token: str | None = None, poll_s: float = 1.0, timeout_s: float = 10.0):
        self.client = PanelClient(url, token, timeout_s)
        self.poll_s = poll_s
        self.state: dict[str, Any] | None = None
        self.overview: dict[str, Any] | None = None
        self.connected = False
        self.error: str | None = None
        """Why the last poll failed, in words for the person (None while the server answers)."""
        self.messages: deque[tuple[float, str, bool]] = deque(maxlen=20)
        """(time, text, ok) of the latest action results, newest last."""
        self.in_flight: set[str] = set()
        self.polls = 0
        self.version = 0
        """Bumped whenever state or messages change (the view redraws then)."""
        self._next_poll = 0.0
        self._polling = False

    # ------------------------------------------------------------------ polling
    def due(self, now: float | None = None) -> Awaitable[None] | None:
        """A poll coroutine when one is due and none is running; else None (called every Kit update)."""
        now = time.monotonic() if now is None else now
        if self._polling or now < self._next_poll:
            return None
        self._polling = True
        self._next_poll = now + self.poll_s
        return self.refresh()

    async def refresh(self) -> None:
        try:
            if self.overview is None:
                self.overview = await self.client.get("/api/overview")
            self.state = await self.client.get("/api/state")
            self.connected, self.error = True, None
        except (PanelUnavailable, PanelRefused) as err:
            self.connected, self.error = False, str(err)
        finally:
            self._polling = False
            self.polls += 1
            self.version += 1

    # ------------------------------------------------------------------ actions
    async def act(self, name: str, **fields: Any) -> dict[str, Any] | None:
        """Run one action; a second press while it is in flight is ignored (the server also refuses doubles)."""
        if name in self.in_flight and name != "emergency_stop":
            return None
        self.in_flight.add(name)
        self.version += 1
        try:
            result = await self.client.action(name, timeout_s=120.0, **fields)
            self._say(result.get("message") or f"{name}: done", True)
            self._next_poll = 0.0  # show the effect at the next update
            return result
        except (PanelUnavailable, PanelRefused) as err:
            self._say(str(err), False)
            return None
        finally:
            self.in_flight.discard(name)
            self.version += 1

    def _say(self, text: str, ok: bool) -> None:
        self.messages.append((time.time(), text, ok))

    # ------------------------------------------------------------------ what the view shows
    @property
    def jobs(self) -> list[dict[str, Any]]:
        return list((self.state or {}).get("jobs") or [])

    def focus_job(self) -> dict[str, Any] | None:
        """The job the panel shows in front: the newest active one, else the newest."""
        jobs = self.jobs
        return next((j for j in jobs if j.get("state") in ACTIVE), jobs[0] if jobs else None)

    def sim(self) -> dict[str, Any]:
        return dict((self.state or {}).get("sim") or {})

    def newest_exported_run(self) -> str | None:
        """The run of the newest succeeded job that has an export (what Play uses by default)."""
        for job in self.jobs:
            if job.get("kind") in ("export", "evaluate") and job.get("state") == "succeeded" and job.get("run_id"):
                return job["run_id"]
        return None
