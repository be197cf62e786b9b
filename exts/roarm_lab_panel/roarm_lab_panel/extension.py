"""The Kit extension: wires the controller to Kit's update loop, opens the omni.ui window where omni.ui exists,
and, inside Isaac Sim, serves the simulator-service protocol for the open stage.

Kit's main loop never waits here: network work is coroutines on Kit's asyncio loop
(``omni.kit.async_engine.run_coroutine``), and the update subscription only starts coroutines and pumps the stage
service with a zero timeout.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any, Coroutine

import carb
import carb.settings
import omni.ext
import omni.kit.app
from omni.kit.async_engine import run_coroutine

from roarm_lab_panel.controller import PanelController

EXT = "roarm_lab_panel"
_INSTANCE: "PanelExtension | None" = None


def get_instance() -> "PanelExtension | None":
    """The running extension (None when disabled): the omni.ui view's and the tests' way in."""
    return _INSTANCE


def _setting(name: str, default: Any) -> Any:
    value = carb.settings.get_settings().get(f"/exts/{EXT}/{name}")
    return default if value is None else value


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class PanelExtension(omni.ext.IExt):
    def on_startup(self, ext_id: str) -> None:
        global _INSTANCE
        self.ext_id = ext_id
        self.controller = PanelController(str(_setting("url", "http://127.0.0.1:8780/")),
                                          str(_setting("token", "")) or None, float(_setting("poll_s", 1.0)))
        if _setting("token_file", ""):  # else the token in url, or the file roarm-panel writes for the url's port
            self.controller.client.token_file = Path(str(_setting("token_file", "")))
        self.tasks: set[Any] = set()
        self.counters = {"updates": 0}
        """Kit updates seen (a dict: it outlives the extension object, which Kit empties at shutdown)."""
        self.window = None
        self.stage = None
        self.notes: list[str] = []
        if _available("omni.ui"):
            from roarm_lab_panel.ui import PanelWindow

            self.window = PanelWindow(self.controller, self.run)
        else:
            self.notes.append("omni.ui is not available: no window (the controller runs headless)")
        endpoint = str(_setting("stage_endpoint", ""))
        if endpoint and _available("omni.usd") and _available("isaaclab"):
            from roarm_lab_panel.stage_service import StageService

            try:
                self.stage = StageService(endpoint)
            except Exception as err:  # a panel without the stage service is still a panel
                carb.log_error(f"[{EXT}] the stage service did not start: {err}")
        elif endpoint:
            self.notes.append("not Isaac Sim (no omni.usd or Isaac Lab): the stage service is off")
        for note in self.notes:
            carb.log_info(f"[{EXT}] {note}")
        stream = omni.kit.app.get_app().get_update_event_stream()
        self._sub = stream.create_subscription_to_pop(self._on_update, name=f"{EXT}.update")
        _INSTANCE = self
        carb.log_info(f"[{EXT}] started: a view of {self.controller.client.url}")

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Start a coroutine on Kit's loop and keep it until it ends (cancelled at shutdown)."""
        task = run_coroutine(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _on_update(self, _event: Any) -> None:
        self.counters["updates"] += 1
        poll = self.controller.due(time.monotonic())
        if poll is not None:
            self.run(poll)
        if self.stage is not None:
            self.stage.pump()
        if self.window is not None:
            self.window.refresh()

    def on_shutdown(self) -> None:
        global _INSTANCE
        self._sub = None  # dropping the subscription unsubscribes
        for task in list(self.tasks):
            task.cancel()
        if self.window is not None:
            self.window.destroy()
            self.window = None
        if self.stage is not None:
            self.stage.close()
            self.stage = None
        _INSTANCE = None
        carb.log_info(f"[{EXT}] shut down")
