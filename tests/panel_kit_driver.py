"""Run inside Kit's Python (.venv-kit) by tests/test_kit_extension.py: start a real Kit with the lab panel's
extension, tick Kit's update loop from here, drive the extension's controller against a running panel server,
and write what happened to a JSON file (the test asserts on it).

    python tests/panel_kit_driver.py --url http://127.0.0.1:PORT/ --token-file LOGS/panel/PORT.token --exts exts \
        --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

KIT = Path(__import__("isaacsim").__file__).resolve().parent / "kit"
sys.path.insert(0, str(KIT))
EXT = "roarm_lab_panel"


class Driver:
    def __init__(self, app: Any, out: dict[str, Any]):
        self.app, self.out = app, out
        self.ext: Any = None

    def tick_until(self, what: str, done: Callable[[], Any], timeout_s: float = 120.0) -> Any:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            self.app.update()
            value = done()
            if value:
                return value
            time.sleep(0.01)
        raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")

    def act(self, name: str, **fields: Any) -> Any:
        """An action as the window's button does it: a coroutine on Kit's loop; counts the updates it spanned."""
        before = self.ext.counters["updates"]
        task = self.ext.run(self.ext.controller.act(name, **fields))
        self.tick_until(f"action {name}", task.done, 180.0)
        self.out.setdefault("updates_during", {})[name] = self.ext.counters["updates"] - before
        return task.result()

    def job(self, job_id: str) -> dict[str, Any] | None:
        return next((j for j in self.ext.controller.jobs if j.get("job_id") == job_id), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scenario(d: Driver, url: str) -> None:
    from roarm_lab_panel.controller import PanelController
    from roarm_lab_panel.extension import get_instance

    out = d.out
    d.ext = ext = get_instance()
    mgr = d.app.extension_manager
    info = mgr.get_extension_dict(ext.ext_id).get_dict()
    out["extension"] = {"id": ext.ext_id, "enabled": mgr.is_extension_enabled(EXT), "failed": info["state"]["failed"],
                        "modules": list(info["state"]["python"]["modules"]), "title": info["package"]["title"],
                        "config": info["configPath"], "notes": ext.notes, "window": ext.window is not None}

    dead = PanelController(f"http://127.0.0.1:{free_port()}/", timeout_s=3.0)
    task = ext.run(dead.refresh())
    d.tick_until("a poll of a dead server", task.done, 30.0)
    out["dead_server"] = {"connected": dead.connected, "error": dead.error}

    c = ext.controller
    d.tick_until("first state from the panel server", lambda: c.connected, 60.0)
    out["connected"] = {"url": c.client.url, "polls": c.polls, "tasks": c.overview.get("tasks")}

    started = d.act("start_sim", realtime=True)
    out["start_sim"] = {"result": started, "message": c.messages[-1][1] if c.messages else None}
    steps = []
    d.tick_until("the simulator's step to advance", lambda: (steps.append(c.sim().get("state", {}).get("step"))
                                                            or len({s for s in steps if s is not None}) >= 3), 60.0)
    out["sim_steps"] = sorted({s for s in steps if s is not None})

    started = d.act("start_training", max_iterations=300, num_envs=64, overrides=["env.episode_length_s=0.5"],
                    run_name="kit")
    out["start_training"] = started
    job_id = started["job_id"]
    seen: list[tuple[str, int | None]] = []

    def progressed() -> bool:
        job = d.job(job_id)
        if job:
            seen.append((job.get("state"), job.get("iteration")))
        return bool(job and job.get("state") == "running" and (job.get("iteration") or 0) >= 2)

    d.tick_until("training progress to arrive", progressed, 240.0)
    out["again"] = d.act("start_training", max_iterations=300, num_envs=64)
    out["stop"] = d.act("stop_job", job_id=job_id)
    d.tick_until("the job to be stopped", lambda: (d.job(job_id) or {}).get("state") == "stopped", 60.0)
    out["progress_seen"] = sorted({it for state, it in seen if it is not None})
    out["final_job"] = {k: d.job(job_id).get(k) for k in ("state", "iteration", "total_iterations", "run_id")}
    out["stop_sim"] = d.act("stop_sim")

    counters, tasks = ext.counters, ext.tasks
    updates = counters["updates"]
    d.ext = ext = c = None  # Kit warns about (and empties) an extension object someone still holds
    mgr.set_extension_enabled_immediate(EXT, False)
    for _ in range(20):
        d.app.update()
    out["shutdown"] = {"enabled": mgr.is_extension_enabled(EXT), "instance": get_instance() is not None,
                       "updates_after_disable": counters["updates"] - updates, "tasks_left": len(tasks)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--exts", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    from kit_app import KitApp

    out: dict[str, Any] = {"ok": False}
    app = KitApp()
    app.startup(["--no-window", "--allow-root", "--ext-folder", os.path.abspath(args.exts), "--enable", EXT,
                 f"--/exts/{EXT}/url={args.url}", f"--/exts/{EXT}/token_file={args.token_file}",
                 f"--/exts/{EXT}/poll_s=0.5"])
    try:
        scenario(Driver(app, out), args.url)
        out["ok"] = True
    except Exception as err:  # reported in the JSON: the test prints it
        out["error"] = f"{type(err).__name__}: {err}"
        out["traceback"] = traceback.format_exc()
    finally:
        Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    code = app.shutdown()  # Kit's own exit code (the test checks the process's)
    return code or (0 if out["ok"] else 1)


if __name__ == "__main__":
    sys.exit(main())
