"""What the panel shows and does, over the MCP server's control plane (``Lab``): no second version of jobs, the
simulator link, the gateway link, the real arm or the emergency stop.

Reads (``state``, ``runs``, ``curve``, ``frame``...) change nothing. Actions are named in ``ACTIONS`` and take
plain JSON values, checked here and again by the control plane; a refused action raises ``PanelError`` with a
message a person can act on. Starting work is idempotent where a double press would hurt: while a training job
runs, "start training" answers with that job instead of starting a second (a file lock makes this hold across
panel servers too), and the same holds for an evaluation or export of one run and for the simulator.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from roarm_lab.jobs.runfiles import read_tail
from roarm_lab.jobs.runs import find_run, newest_checkpoint, rel_path, resolve_export
from roarm_lab.jobs.store import ACTIVE, JobRecord
from roarm_lab.mcp_server.lab import Lab, expected_errors
from roarm_lab.mcp_server.settings import LabError, LabSettings
from roarm_lab.rl.progress_record import PROGRESS_FILE

RECENT_JOBS = 8
CURVE_BYTES = 2 * 1024 * 1024
CURVE_POINTS = 600
WORKSPACE_POINTS = 2500
GATEWAY_STATS_EVERY_S = 3.0
SIM_WAIT_S = 1.0
"""A panel request waits this long for the simulator (another request holds it) before saying it is busy."""

BUTTONS = {"start_sim": "Start simulator", "stop_sim": "Stop simulator", "export_policy": "Export",
           "evaluate_policy": "Evaluate", "training_status": "the job list", "list_runs": "the run list",
           "start_gateway": "Serve on gateway", "stop_gateway": "Stop gateway", "emergency_stop": "EMERGENCY STOP",
           "stop_training": "Stop", "run_policy_in_sim": "Play", "start_training": "Start training"}
_TOOL = re.compile(r"\b(?:call |use |with )?(" + "|".join(BUTTONS) + r")\b(\([^)]*\))?")


def _exit_words(code: int | None) -> str:
    """An exit status as a person reads it: 'exit code 1', 'killed by SIGKILL'."""
    import signal

    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class PanelError(ValueError):
    """An action the panel refuses or that failed; the message says what to do."""


def for_people(message: str) -> str:
    """The control plane's messages name MCP tools; the panel names its buttons instead."""
    text = _TOOL.sub(lambda m: f"press “{BUTTONS[m.group(1)]}”", message)
    return text.replace(" with that run_id", " for that run").replace("run_id", "run")


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise PanelError(f"{name} must be a number from {low} to {high}, got {value!r}")
    return float(value)


def _integer(value: Any, name: str, low: int, high: int, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PanelError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _text(value: Any, name: str, max_len: int = 200, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > max_len or "\x00" in value:
        raise PanelError(f"{name} must be text of at most {max_len} characters")
    return value.strip()


def _target(value: Any, name: str = "target") -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 3:
        raise PanelError(f"{name} must be three numbers [x, y, z] in metres (robot base frame)")
    return [_number(v, f"{name} {axis}", -1.0, 1.0) for v, axis in zip(value, "xyz")]


class PanelBackend:
    def __init__(self, settings: LabSettings | None = None):
        self.settings = settings or LabSettings()
        self.lab = Lab(self.settings)
        self.paths = self.settings.paths
        self._sim_params: dict[str, Any] = {"task": self.settings.default_task, "realtime": True, "seed": 0,
                                            "randomize": False}
        self._sim_starting = False
        self._sim_death: dict[str, Any] | None = None
        self._sim_start_lock = threading.Lock()
        self._gateway_cache: tuple[float, dict[str, Any]] = (0.0, {"running": False})
        self._gateway_death: dict[str, Any] | None = None
        self.last_estop: dict[str, Any] | None = None

    def close(self) -> None:
        """Stop the simulator and gateway this panel started (jobs keep running, as with the MCP server)."""
        self.lab.close()

    # ------------------------------------------------------------------ reading
    def overview(self) -> dict[str, Any]:
        from roarm_lab.registry import registered_tasks

        return {"tasks": registered_tasks(), "default_task": self.settings.default_task,
                "real_arm_motion_allowed": self.settings.real.allow, "root": str(self.paths.root),
                "logs": str(self.paths.logs), "cameras": ["iso", "front", "side", "top"]}

    def state(self) -> dict[str, Any]:
        """Everything that changes, in one answer: jobs, simulator, gateway, real arm."""
        return {"time": time.time(), "jobs": self.jobs(), "sim": self.sim_state(), "gateway": self.gateway_state(),
                "real": self.real_state(), "estop": self.last_estop}

    def jobs(self) -> list[dict[str, Any]]:
        store = self.lab.training.store
        records = sorted(store.all(), key=lambda j: j.created)
        active = [j for j in records if store.state(j) in ACTIVE]
        shown = active + [j for j in reversed(records) if j not in active][:max(0, RECENT_JOBS - len(active))]
        out = []
        for job in shown:
            try:
                status = self.lab.training.status(job.id, tail=6).model_dump()
            except expected_errors() as err:
                status = {"job_id": job.id, "kind": job.kind, "state": "unknown", "error": str(err)}
            status["params"] = job.params
            status["created"] = job.created
            if status.get("error"):
                status["error"] = for_people(status["error"])
            status.pop("next", None)
            out.append(status)
        return out

    def runs(self, task: str | None = None) -> list[dict[str, Any]]:
        return self._guard(lambda: self.lab.training.runs(task or None).runs)

    def run(self, ref: str) -> dict[str, Any]:
        """One run for the checkpoint picker: its checkpoints (newest first), export and metrics."""
        def get() -> dict[str, Any]:
            run = find_run(self.paths, self.lab.training.store, _text(ref, "run", 300))
            ckpts = sorted(run.path.glob("model_*.pt"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0),
                           reverse=True)
            from roarm_lab.jobs.runfiles import read_json

            return {"run_id": run.id, "path": rel_path(self.paths, run.path),
                    "checkpoints": [rel_path(self.paths, c) for c in ckpts],
                    "exported": (run.export_dir / "policy.json").is_file(),
                    "metrics": read_json(run.export_dir / "metrics.json", "metrics"),
                    "job_id": run.job.id if run.job else None}
        return self._guard(get)

    def curve(self, ref: str) -> dict[str, Any]:
        """The run's learning curve from its own ``progress.jsonl`` (read bounded; a partial last line is skipped)."""
        def get() -> dict[str, Any]:
            run = find_run(self.paths, self.lab.training.store, _text(ref, "run", 300))
            text = read_tail(run.path / PROGRESS_FILE, CURVE_BYTES)
            lines = text.splitlines()
            if len(text.encode()) >= CURVE_BYTES and lines:
                lines = lines[1:]  # the first line may be cut
            records = []
            for line in lines:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("iteration"), (int, float)):
                    records.append({k: row.get(k) for k in ("iteration", "wall_time_s", "success_rate",
                                                            "position_error_m", "mean_reward")})
            every = max(1, math.ceil(len(records) / CURVE_POINTS))
            thinned = records[::every] + (records[-1:] if records and (len(records) - 1) % every else [])
            return {"run_id": run.id, "records": thinned, "total": len(records),
                    "note": None if records else f"{run.id} has no {PROGRESS_FILE} records yet"}
        return self._guard(get)

    def workspace(self, task: str | None = None) -> dict[str, Any]:
        """Reachable hand targets of a task (a sample of its target bank) for the click-to-target pad."""
        from roarm_lab.mcp_server.training import validate_task
        from roarm_lab.sim_service.workspace import task_workspace

        task = _text(task, "task", 100) or self.settings.default_task
        self._guard(lambda: validate_task(task))
        bank = task_workspace(task).bank
        step = max(1, len(bank) // WORKSPACE_POINTS)
        pts = [[round(float(v), 4) for v in p] for p in bank[::step]]
        return {"task": task, "points": pts, "tolerance_m": task_workspace(task).tolerance_m}

    def sim_state(self) -> dict[str, Any]:
        link = self.lab.sim
        base = {"params": self._sim_params, "starting": self._sim_starting, "died": self._sim_death}
        if link.proc is None:
            return {**base, "running": False}
        if not link.proc.alive():
            self._note_sim_death()
            return {**base, "running": False, "died": self._sim_death}
        try:
            reply = link.call("status", timeout_ms=5000, wait_s=SIM_WAIT_S)
        except LabError as err:
            return {**base, "running": link.running(), "busy": True, "message": for_people(str(err))}
        spec = reply.get("spec") or {}
        state = reply.get("state") or {}
        return {**base, "running": True, "task": spec.get("task"), "realtime": spec.get("realtime"),
                "endpoint": link.client.endpoint if link.client else None, "pid": link.proc.pid,
                "late_ticks": reply.get("late_ticks"), "policy": reply.get("policy"),
                "state": {k: state.get(k) for k in ("step", "sim_time_s", "hand_b", "target_b", "error_m",
                                                   "within_threshold", "threshold_m", "controller")}}

    def gateway_state(self) -> dict[str, Any]:
        link = self.lab.gateway
        if link.proc is not None and not link.proc.alive():
            code = link.proc.proc.returncode
            self._gateway_death = {"exit_code": code, "log_tail": link.proc.log_tail(6), "at": time.time(),
                                   "log": rel_path(self.paths, link.proc.log_path), "why": _exit_words(code)}
            link.stop()
        if not link.running():
            return {"running": False, "died": self._gateway_death}
        when, cached = self._gateway_cache
        if cached.get("running") and time.monotonic() - when < GATEWAY_STATS_EVERY_S:
            return cached
        try:
            info = link.info().model_dump()
        except LabError as err:
            info = {"running": True, "endpoint": link.endpoint, "error": for_people(str(err))}
        stats = info.pop("stats", None) or {}
        spec = info.pop("spec", None) or {}
        total = (stats.get("latency_us") or {}).get("total") or {}
        info.update(task=spec.get("task"), infers=stats.get("infers"), deadline_misses=stats.get("deadline_misses"),
                    deadline_miss_rate=stats.get("deadline_miss_rate"), sessions=stats.get("sessions"),
                    latency_us=total.get("window") or total.get("all") or {},
                    clients=[{"label": k, **v} for k, v in (stats.get("clients") or {}).items()],
                    died=None)
        self._gateway_cache = (time.monotonic(), info)
        return info

    def real_state(self) -> dict[str, Any]:
        return self._guard(lambda: self.lab.real.status(probe=False).model_dump())

    def frame(self, camera: str = "iso", width: int = 480, height: int = 360) -> bytes:
        """A PNG of the simulated scene from the simulator service's renderer."""
        reply = self._sim_call("render", timeout_ms=15000, camera=_text(camera, "camera", 20, "iso"),
                               width=_integer(width, "width", 64, 1280, 480),
                               height=_integer(height, "height", 64, 960, 360))
        return reply["png"]

    # ------------------------------------------------------------------ actions
    def start_training(self, task: str | None = None, num_envs: int | None = None, max_iterations: int | None = None,
                       overrides: list[str] | None = None, run_name: str | None = None,
                       seed: int | None = None) -> dict[str, Any]:
        t = self.lab.training
        task = _text(task, "task", 100) or self.settings.default_task
        if overrides is not None and (not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides)):
            raise PanelError("overrides must be a list of lines like env.a.b=value")
        with self._exclusive("train"):
            running = [j for j in t.store.all() if j.kind == "train" and t.store.state(j) in ACTIVE]
            if running:
                job = running[-1]
                return {"job_id": job.id, "already_running": True,
                        "message": f"training job {job.id} is already running; it is shown below (stop it to start "
                                   "another)"}
            started = self._guard(lambda: t.start_training(
                task, _integer(num_envs, "num_envs", 1, 8192), _integer(max_iterations, "max_iterations", 1, 100000),
                [o.strip() for o in overrides or [] if o.strip()], _text(run_name, "run name", 60),
                _integer(seed, "seed", 0, 2**31 - 1)))
            t.wait_started(started.job_id)
        return {"job_id": started.job_id, "already_running": False,
                "message": f"training job {started.job_id} started ({task})"}

    def stop_job(self, job_id: str) -> dict[str, Any]:
        status = self._guard(lambda: self.lab.training.stop(_text(job_id, "job id", 60)))
        return {"job_id": status.job_id, "state": status.state, "message": f"job {status.job_id} {status.state}"}

    def restart_job(self, job_id: str) -> dict[str, Any]:
        """Start a failed, stopped or orphaned job again with its recorded settings."""
        store = self.lab.training.store
        job: JobRecord = self._guard(lambda: store.load(_text(job_id, "job id", 60)))
        if store.state(job) in ACTIVE:
            raise PanelError(f"job {job.id} is still running; there is nothing to restart")
        p = job.params
        if job.kind == "train":
            name = re.sub(r"-[0-9a-f]{4}$", "", str(p.get("run_name") or ""))
            return self.start_training(job.task, p.get("num_envs"), p.get("max_iterations"),
                                       [o for o in p.get("overrides") or [] if not o.startswith("presets=")],
                                       "" if name == "mcp" else name, p.get("seed"))
        if job.kind in ("evaluate", "export") and job.run_dir:
            ckpt = str(Path(job.run_dir) / str(p.get("checkpoint", "")))
            if job.kind == "export":
                return self.export(None, ckpt)
            return self.evaluate(None, ckpt, p.get("episodes", 200), bool(p.get("randomize")))
        raise PanelError(f"a {job.kind} job is not restarted from the panel; start it again from its section")

    def evaluate(self, run_id: str | None = None, checkpoint: str | None = None, episodes: int | None = 200,
                 randomize: bool = False) -> dict[str, Any]:
        episodes = _integer(episodes, "episodes", 1, 5000, 200)
        with self._exclusive("play"):
            busy = self._playing(run_id, checkpoint)
            if busy:
                return busy
            started = self._guard(lambda: self.lab.training.evaluate(run_id or None, checkpoint or None, episodes,
                                                                     bool(randomize)))
            self.lab.training.wait_started(started.job_id)
        return {"job_id": started.job_id, "message": f"evaluation job {started.job_id} started on {episodes} "
                                                     "held-out targets"}

    def export(self, run_id: str | None = None, checkpoint: str | None = None) -> dict[str, Any]:
        with self._exclusive("play"):
            busy = self._playing(run_id, checkpoint)
            if busy:
                return busy
            result = self._guard(lambda: self.lab.training.export(run_id or None, checkpoint or None))
            if result.job_id:
                self.lab.training.wait_started(result.job_id)
        if result.up_to_date:
            return {"job_id": None, "message": f"the export of {result.run_id} is up to date "
                                              f"({Path(result.checkpoint).name})"}
        return {"job_id": result.job_id, "message": f"export job {result.job_id} started "
                                                    f"({Path(result.checkpoint).name})"}

    def _playing(self, run_id: str | None, checkpoint: str | None) -> dict[str, Any] | None:
        """An evaluation/export job already running on this run (a second press answers with it)."""
        store = self.lab.training.store
        try:
            run = find_run(self.paths, store, str(Path(self.paths.confine(checkpoint)).parent) if checkpoint
                           else _text(run_id, "run", 300))
        except expected_errors() as err:
            raise PanelError(for_people(str(err))) from None
        for job in store.all():
            if job.kind in ("evaluate", "export") and job.run_dir and Path(job.run_dir).resolve() == run.path \
                    and store.state(job) in ACTIVE:
                return {"job_id": job.id, "already_running": True,
                        "message": f"{job.kind} job {job.id} is already running on {run.id}"}
        return None

    def start_sim(self, task: str | None = None, realtime: bool = True, seed: int | None = 0,
                  randomize: bool = False) -> dict[str, Any]:
        params = {"task": _text(task, "task", 100) or self.settings.default_task, "realtime": bool(realtime),
                  "seed": _integer(seed, "seed", 0, 2**31 - 1, 0), "randomize": bool(randomize)}
        if not self._sim_start_lock.acquire(blocking=False):
            return {"message": "the simulator is starting already"}
        try:
            if self.lab.sim.running():
                return {"message": f"the simulator of {self.lab.sim.spec['task']} is running already"}
            self._sim_starting, self._sim_params = True, params
            self._guard(lambda: self.lab.sim.start(params["task"], True, params["realtime"], params["seed"],
                                                   params["randomize"]))
            self._sim_death = None
        finally:
            self._sim_starting = False
            self._sim_start_lock.release()
        return {"message": f"simulator of {params['task']} started" + (" (real time)" if params["realtime"] else "")}

    def stop_sim(self) -> dict[str, Any]:
        was = self.lab.sim.stop()
        self._sim_death = None
        return {"message": "simulator stopped" if was else "no simulator was running"}

    def restart_sim(self) -> dict[str, Any]:
        self.lab.sim.stop()
        self._sim_death = None
        p = self._sim_params
        return self.start_sim(p["task"], p["realtime"], p["seed"], p["randomize"])

    def set_target(self, target: list[float]) -> dict[str, Any]:
        reply = self._sim_call("set_target", target=_target(target))
        return {"message": f"target set to {[round(v, 3) for v in reply['state']['target_b']]} m",
                "state": reply["state"]}

    def play(self, policy: str, target: list[float] | None = None, max_steps: int | None = 300) -> dict[str, Any]:
        """Run an exported policy closed-loop in the simulator (started here if it is not running)."""
        export = self._guard(lambda: resolve_export(self.paths, self.lab.training.store, _text(policy, "policy", 300)))
        fields: dict[str, Any] = {"policy": {"export": str(export)}, "until_reached": True,
                                  "max_steps": _integer(max_steps, "max_steps", 1, 3000, 300)}
        goal = _target(target)
        if goal is not None:
            fields["target"] = goal
        if not self.lab.sim.running():
            self.start_sim(**self._sim_params)
        with contextlib.suppress(PanelError):  # a run already going ends first (Play means "play this")
            self._sim_call("stop_policy")
        reply = self._sim_call("run_policy", timeout_ms=120000, **fields)
        run = reply["policy"]
        return {"policy": run, "message": f"playing {export.parent.name} toward "
                f"{[round(v, 3) for v in run.get('target_b') or []]} m"
                + (" (real time: watch the live view)" if not run.get("done") else
                   f": {run.get('stopped')} after {run.get('steps')} steps, final error "
                   f"{100 * (run.get('final_error_m') or 0):.1f} cm")}

    def stop_policy(self) -> dict[str, Any]:
        reply = self._sim_call("stop_policy")
        return {"policy": reply["policy"], "message": "policy run stopped"}

    def start_gateway(self, policy: str) -> dict[str, Any]:
        export = self._guard(lambda: resolve_export(self.paths, self.lab.training.store, _text(policy, "policy", 300)))
        with self._exclusive("gateway"):
            if self.lab.gateway.running():
                return {"message": f"the gateway is serving {self.lab.gateway.policy} already on "
                                   f"{self.lab.gateway.endpoint}"}
            info = self._guard(lambda: self.lab.gateway.start(export))
        self._gateway_death, self._gateway_cache = None, (0.0, {"running": False})
        return {"message": f"gateway serving {info.policy} on {info.endpoint}"}

    def stop_gateway(self) -> dict[str, Any]:
        was = self.lab.gateway.stop()
        self._gateway_death, self._gateway_cache = None, (0.0, {"running": False})
        return {"message": "gateway stopped" if was else "no gateway was running"}

    def emergency_stop(self) -> dict[str, Any]:
        result = self.lab.emergency_stop().model_dump()
        result["message"] = "EMERGENCY STOP: " + result["message"] + (
            " The policy in the simulator was stopped." if result["sim_policy_stopped"] else "")
        result["at"] = time.time()
        self.last_estop = result
        return result

    def real_dry_run(self, policy: str, targets: list[list[float]]) -> dict[str, Any]:
        goals = [_target(t, f"target {i + 1}") for i, t in enumerate(targets if isinstance(targets, list) else [None])]
        result = self._guard(lambda: self.lab.real.run(_text(policy, "policy", 300), goals, True, False))
        return result.model_dump()

    def real_run(self, policy: str, targets: list[list[float]], confirm: bool = False) -> dict[str, Any]:
        """Move the real arm: needs ``--allow-real-arm`` on the panel server and the person's confirmation."""
        goals = [_target(t, f"target {i + 1}") for i, t in enumerate(targets if isinstance(targets, list) else [None])]
        result = self._guard(lambda: self.lab.real.run(_text(policy, "policy", 300), goals, False, confirm is True))
        return result.model_dump()

    # ------------------------------------------------------------------ helpers
    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except PanelError:
            raise
        except expected_errors() as err:
            raise PanelError(for_people(str(err))) from None

    def _sim_call(self, kind: str, timeout_ms: float = 10000, **fields: Any) -> dict[str, Any]:
        link = self.lab.sim
        if link.proc is not None and not link.proc.alive():
            self._note_sim_death()
        if self._sim_death is not None and link.proc is None:
            raise PanelError(f"the simulator stopped unexpectedly ({self._sim_death['why']}; its log: "
                             f"{self._sim_death['log']}); press “Restart simulator”")
        if self._sim_starting:
            raise PanelError("the simulator is still starting; try again in a few seconds")
        return self._guard(lambda: link.call(kind, timeout_ms=timeout_ms, wait_s=SIM_WAIT_S, **fields))

    def _note_sim_death(self) -> None:
        link = self.lab.sim
        if link.proc is not None and not link.proc.alive():
            code = link.proc.proc.returncode
            self._sim_death = {"exit_code": code, "log_tail": link.proc.log_tail(6), "at": time.time(),
                               "log": rel_path(self.paths, link.proc.log_path), "why": _exit_words(code)}
            with contextlib.suppress(Exception):
                link.stop()

    @contextlib.contextmanager
    def _exclusive(self, name: str) -> Iterator[None]:
        """One start of a kind at a time, across threads and panel processes (a lock file in the jobs folder)."""
        self.paths.jobs.mkdir(parents=True, exist_ok=True)
        with open(self.paths.jobs / f".panel-{name}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


ACTIONS: dict[str, str] = {
    "start_training": "start_training", "stop_job": "stop_job", "restart_job": "restart_job",
    "evaluate": "evaluate", "export": "export", "start_sim": "start_sim", "stop_sim": "stop_sim",
    "restart_sim": "restart_sim", "set_target": "set_target", "play": "play", "stop_policy": "stop_policy",
    "start_gateway": "start_gateway", "stop_gateway": "stop_gateway", "emergency_stop": "emergency_stop",
    "real_dry_run": "real_dry_run", "real_run": "real_run",
}
"""The actions a page may ask for (name -> backend method); nothing else is callable from outside."""
