"""What the panel shows and does: a face of the control plane (``roarm_lab.control.Lab``). It translates a page's
JSON into the core's calls and the core's answers into what the page draws; every rule is the core's.

Reads (``state``, ``runs``, ``curve``, ``frame``...) change nothing. Actions are named in ``ACTIONS`` and take
plain JSON values, typed here; a refused action raises ``PanelError`` with a message a person can act on, naming
the panel's buttons where the core names MCP tools. A second press of a start while that job runs (the core's job
limit refuses it) answers with the running job instead of an error.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Callable

from roarm_lab.control import progress, rules
from roarm_lab.control.errors import expected_errors
from roarm_lab.control.jobs import JobLimitError
from roarm_lab.control.lab import Lab
from roarm_lab.control.runfiles import read_json
from roarm_lab.control.runs import rel_path
from roarm_lab.control.settings import LabSettings

RECENT_JOBS = 8
WORKSPACE_POINTS = 2500
GATEWAY_STATS_EVERY_S = 3.0
SIM_WAIT_S = 1.0
"""A panel request waits this long for the simulator (another request holds it) before saying it is busy."""
TARGET_RANGE_M = 1.0
"""A typed or clicked hand target: each coordinate within this of the base (the core checks reachability)."""

BUTTONS = {"start_sim": "Start simulator", "stop_sim": "Stop simulator", "export_policy": "Export",
           "evaluate_policy": "Evaluate", "training_status": "the job list", "list_runs": "the run list",
           "start_gateway": "Serve on gateway", "stop_gateway": "Stop gateway", "emergency_stop": "EMERGENCY STOP",
           "stop_training": "Stop", "run_policy_in_sim": "Play", "start_training": "Start training"}
_TOOL = re.compile(r"\b(?:call |use |with )?(" + "|".join(BUTTONS) + r")\b(\([^)]*\))?")


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


def _integer(value: Any, name: str, allowed: rules.Range, default: int | None = None) -> int | None:
    """A whole number from a form field ('' or null: the default), in the rule's range."""
    if value is None or value == "":
        return default
    try:
        return int(allowed.check(name, value))
    except expected_errors() as err:
        raise PanelError(str(err)) from None


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
    return [_number(v, f"{name} {axis}", -TARGET_RANGE_M, TARGET_RANGE_M) for v, axis in zip(value, "xyz")]


def _targets(value: Any) -> list[list[float] | None]:
    return [_target(t, f"target {i + 1}") for i, t in enumerate(value if isinstance(value, list) else [None])]


class PanelBackend:
    def __init__(self, settings: LabSettings | None = None):
        self.settings = settings or LabSettings()
        self.lab = Lab(self.settings)
        self._gateway_cache: tuple[float, dict[str, Any]] = (0.0, {"running": False})
        self.last_estop: dict[str, Any] | None = None

    def close(self) -> None:
        """Stop the simulator and gateway this panel started (jobs keep running, as with the MCP server)."""
        self.lab.close()

    # ------------------------------------------------------------------ reading
    def overview(self) -> dict[str, Any]:
        from roarm_lab.control.tasks import error_label
        from roarm_lab.registry import registered_tasks
        from roarm_lab.sim_service.render import CAMERAS

        tasks = [t for t in registered_tasks() if "-Play-" not in t]
        return {"tasks": tasks, "default_task": self.settings.default_task,
                "error_labels": {t: error_label(t) for t in tasks},
                "real_arm_motion_allowed": self.settings.real.allow, "root": str(self.lab.paths.root),
                "logs": str(self.lab.paths.logs), "cameras": list(CAMERAS),
                "limits": {"num_envs": [rules.NUM_ENVS.low, rules.NUM_ENVS.high],
                           "max_iterations": [rules.MAX_ITERATIONS.low, rules.MAX_ITERATIONS.high],
                           "episodes": [rules.EPISODES.low, rules.EPISODES.high]}}

    def state(self) -> dict[str, Any]:
        """Everything that changes, in one answer: jobs, simulator, gateway, real arm."""
        return {"time": time.time(), "jobs": self.jobs(), "sweeps": self.sweeps(), "sim": self.sim_state(),
                "gateway": self.gateway_state(), "real": self.real_state(), "estop": self.last_estop}

    def sweeps(self) -> list[dict[str, Any]]:
        """The newest sweeps and their trials (each trial's run is an ordinary run: its curve, its export)."""
        try:
            return [s.model_dump(mode="json") for s in self.lab.sweeps.recent()]
        except expected_errors() as err:
            return [{"sweep": "?", "state": "unknown", "trials": [], "error": for_people(str(err))}]

    def jobs(self) -> list[dict[str, Any]]:
        store = self.lab.store
        records = store.all()
        active = [j for j in records if store.counts_as_running(j)]
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
        """One run for the checkpoint picker: its checkpoints (newest first), export and evaluation metrics."""
        def get() -> dict[str, Any]:
            run = self.lab.run(_text(ref, "run", 300))
            files = run.files
            return {"run_id": run.id, "path": rel_path(self.lab.paths, run.path),
                    "checkpoints": [rel_path(self.lab.paths, c) for c in files.checkpoints()],
                    "exported": files.policy_spec.is_file(), "metrics": read_json(files.metrics(), "metrics"),
                    "export": read_json(files.export_record, "export record"),
                    "job_id": run.job.id if run.job else None}
        return self._guard(get)

    def curve(self, ref: str) -> dict[str, Any]:
        """The run's learning curve from its own progress records."""
        def get() -> dict[str, Any]:
            run = self.lab.run(_text(ref, "run", 300))
            records, total = progress.curve(run.files.progress)
            return {"run_id": run.id, "records": records, "total": total,
                    "note": None if records else f"{run.id} has no progress records yet"}
        return self._guard(get)

    def workspace(self, task: str | None = None) -> dict[str, Any]:
        """Reachable hand targets of a task (a sample of its target bank) for the click-to-target pad."""
        from roarm_lab.control.training import validate_task
        from roarm_lab.sim_service.workspace import task_workspace

        task = _text(task, "task", 100) or self.settings.default_task
        self._guard(lambda: validate_task(task))
        space = task_workspace(task)
        step = max(1, len(space.bank) // WORKSPACE_POINTS)
        pts = [[round(float(v), 4) for v in p] for p in space.bank[::step]]
        return {"task": task, "points": pts, "tolerance_m": space.tolerance_m}

    def sim_state(self) -> dict[str, Any]:
        link = self.lab.sim
        link.check()
        base = {"params": link.params, "starting": link.starting, "died": link.died}
        if not link.running():
            return {**base, "running": False}
        try:
            reply = link.call("status", timeout_ms=5000, wait_s=SIM_WAIT_S)
        except expected_errors() as err:
            return {**base, "running": link.running(), "busy": True, "message": for_people(str(err))}
        spec = reply.get("spec") or {}
        state = reply.get("state") or {}
        return {**base, "running": True, "task": spec.get("task"), "realtime": spec.get("realtime"),
                "endpoint": link.client.endpoint if link.client else None, "pid": link.proc.pid if link.proc else None,
                "late_ticks": reply.get("late_ticks"), "policy": reply.get("policy"),
                "state": {k: state.get(k) for k in ("step", "sim_time_s", "hand_b", "target_b", "error_m",
                                                   "within_threshold", "threshold_m", "controller")}}

    def gateway_state(self) -> dict[str, Any]:
        link = self.lab.gateway
        link.check()
        if not link.running():
            return {"running": False, "died": link.died}
        when, cached = self._gateway_cache
        if cached.get("running") and time.monotonic() - when < GATEWAY_STATS_EVERY_S:
            return cached
        try:
            info = link.info().model_dump()
        except expected_errors() as err:
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
                               width=_integer(width, "width", rules.RENDER_WIDTH, 480),
                               height=_integer(height, "height", rules.RENDER_HEIGHT, 360))
        return reply["png"]

    # ------------------------------------------------------------------ actions
    def start_training(self, task: str | None = None, num_envs: int | None = None, max_iterations: int | None = None,
                       overrides: list[str] | None = None, run_name: str | None = None,
                       seed: int | None = None) -> dict[str, Any]:
        task = _text(task, "task", 100) or self.settings.default_task
        if overrides is not None and (not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides)):
            raise PanelError("overrides must be a list of lines like env.a.b=value")
        args = (task, _integer(num_envs, "num_envs", rules.NUM_ENVS), _integer(max_iterations, "max_iterations",
                rules.MAX_ITERATIONS), [o.strip() for o in overrides or [] if o.strip()], _text(run_name, "run name", 60),
                _integer(seed, "seed", rules.SEED))
        started = self._start(lambda: self.lab.training.start_training(*args))
        if started["already_running"]:
            return started
        return {"job_id": started["job_id"], "already_running": False,
                "message": f"training job {started['job_id']} started ({task})"}

    def start_sweep(self, task: str | None = None, num_samples: int | None = None, max_iterations: int | None = None,
                    overrides: list[str] | None = None) -> dict[str, Any]:
        task = _text(task, "task", 100) or self.settings.default_task
        if overrides is not None and (not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides)):
            raise PanelError("overrides must be a list of lines like env.a.b=value")
        args = (task, _integer(num_samples, "trials", rules.SWEEP_SAMPLES, 8),
                _integer(max_iterations, "max_iterations", rules.MAX_ITERATIONS),
                [o.strip() for o in overrides or [] if o.strip()])
        started = self._start(lambda: self.lab.sweeps.start(*args))
        if started["already_running"]:
            return started
        return {"job_id": started["job_id"], "already_running": False,
                "message": f"sweep job {started['job_id']} started ({task}, {args[1]} trials)"}

    def stop_job(self, job_id: str) -> dict[str, Any]:
        status = self._guard(lambda: self.lab.training.stop(_text(job_id, "job id", 60)))
        return {"job_id": status.job_id, "state": status.state, "message": f"job {status.job_id} {status.state}"}

    def restart_job(self, job_id: str) -> dict[str, Any]:
        """Start a failed, stopped or lost job again with its recorded settings."""
        started = self._start(lambda: self.lab.restart(_text(job_id, "job id", 60)))
        return {"message": started.get("message") or f"job {started.get('job_id')} started", **started}

    def evaluate(self, run_id: str | None = None, checkpoint: str | None = None, episodes: int | None = 200,
                 randomize: bool = False) -> dict[str, Any]:
        episodes = _integer(episodes, "episodes", rules.EPISODES, 200)
        started = self._start(lambda: self.lab.training.evaluate(run_id or None, checkpoint or None, episodes,
                                                                 bool(randomize)))
        return started if started["already_running"] else {
            "job_id": started["job_id"], "message": f"evaluation job {started['job_id']} started on {episodes} "
                                                    "held-out targets"}

    def export(self, run_id: str | None = None, checkpoint: str | None = None) -> dict[str, Any]:
        result = self._start(lambda: self.lab.training.export(run_id or None, checkpoint or None))
        if result["already_running"]:
            return result
        name = result["checkpoint"].rsplit("/", 1)[-1]
        if result["up_to_date"]:
            return {"job_id": None, "message": f"the export of {result['run_id']} is up to date ({name})"}
        return {"job_id": result["job_id"], "message": f"export job {result['job_id']} started ({name})"}

    def start_sim(self, task: str | None = None, realtime: bool = True, seed: int | None = 0,
                  randomize: bool = False) -> dict[str, Any]:
        link = self.lab.sim
        task = _text(task, "task", 100) or self.settings.default_task
        if link.starting:
            return {"message": "the simulator is starting already"}
        if link.running():
            return {"message": f"the simulator of {link.spec['task']} is running already"}
        self._guard(lambda: link.start(task, True, bool(realtime), _integer(seed, "seed", rules.SEED, 0),
                                       bool(randomize)))
        return {"message": f"simulator of {task} started" + (" (real time)" if realtime else "")}

    def stop_sim(self) -> dict[str, Any]:
        was = self.lab.sim.stop()
        return {"message": "simulator stopped" if was else "no simulator was running"}

    def restart_sim(self) -> dict[str, Any]:
        self.lab.sim.stop()
        p = self.lab.sim.params
        return self.start_sim(p["task"], p["realtime"], p["seed"], p["randomize"])

    def set_target(self, target: list[float]) -> dict[str, Any]:
        reply = self._sim_call("set_target", target=_target(target))
        return {"message": f"target set to {[round(v, 3) for v in reply['state']['target_b']]} m",
                "state": reply["state"]}

    def play(self, policy: str, target: list[float] | None = None, max_steps: int | None = 300) -> dict[str, Any]:
        """Run an exported policy closed-loop in the simulator (started here if it is not running)."""
        policy = _text(policy, "policy", 300)
        source = self._guard(lambda: self.lab.policy_source(policy, False))
        steps = _integer(max_steps, "max_steps", rules.POLICY_STEPS, 300)
        goal = _target(target)
        if not self.lab.sim.running():
            p = self.lab.sim.params
            self.start_sim(p["task"], p["realtime"], p["seed"], p["randomize"])
        try:  # a run already going ends first (Play means "play this")
            self._sim_call("stop_policy")
        except PanelError:
            pass
        # the core runs it in the background (real time or stepped): the live view shows it, Stop ends it
        run = self._guard(lambda: self.lab.sim.run_policy(source, goal, steps, True)).model_dump(mode="json")
        return {"policy": run, "message": f"playing {policy} toward {run['target_m']} m (watch the live view)"}

    def stop_policy(self) -> dict[str, Any]:
        reply = self._sim_call("stop_policy")
        return {"policy": reply["policy"], "message": "policy run stopped"}

    def start_gateway(self, policy: str) -> dict[str, Any]:
        link = self.lab.gateway
        if link.running():
            return {"message": f"the gateway is serving {rel_path(self.lab.paths, link.policy)} already on "
                               f"{link.endpoint}"}
        info = self._guard(lambda: self.lab.serve(_text(policy, "policy", 300)))
        self._gateway_cache = (0.0, {"running": False})
        return {"message": f"gateway serving {info.policy} on {info.endpoint}"}

    def stop_gateway(self) -> dict[str, Any]:
        was = self.lab.gateway.stop()
        self._gateway_cache = (0.0, {"running": False})
        return {"message": "gateway stopped" if was else "no gateway was running"}

    def emergency_stop(self) -> dict[str, Any]:
        result = self.lab.emergency_stop().model_dump()
        result["message"] = "EMERGENCY STOP: " + result["message"]
        result["at"] = time.time()
        self.last_estop = result
        return result

    def real_dry_run(self, policy: str, targets: list[list[float]]) -> dict[str, Any]:
        goals = _targets(targets)
        return self._guard(lambda: self.lab.real.run(_text(policy, "policy", 300), goals, True, False)).model_dump()

    def real_run(self, policy: str, targets: list[list[float]], confirm: bool = False) -> dict[str, Any]:
        """Move the real arm: needs ``--allow-real-arm`` on the panel server and the person's confirmation."""
        goals = _targets(targets)
        return self._guard(lambda: self.lab.real.run(_text(policy, "policy", 300), goals, False,
                                                     confirm is True)).model_dump()

    # ------------------------------------------------------------------ helpers
    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except PanelError:
            raise
        except expected_errors() as err:
            raise PanelError(for_people(str(err))) from None

    def _start(self, fn: Callable[[], Any]) -> dict[str, Any]:
        """Start a job; when the core's job limit refuses it, answer with the job in the way (a second press)."""
        try:
            result = fn().model_dump()
        except JobLimitError as err:
            return {"job_id": err.running[-1], "already_running": True, "message": for_people(str(err))}
        except expected_errors() as err:
            raise PanelError(for_people(str(err))) from None
        if result.get("job_id"):
            self.lab.store.wait_started(result["job_id"])
        return {**result, "already_running": False}

    def _sim_call(self, kind: str, timeout_ms: float = 10000, **fields: Any) -> dict[str, Any]:
        if self.lab.sim.starting:
            raise PanelError("the simulator is still starting; try again in a few seconds")
        try:
            return self._guard(lambda: self.lab.sim.call(kind, timeout_ms=timeout_ms, wait_s=SIM_WAIT_S, **fields))
        except PanelError:
            died = self.lab.sim.died
            if died is None:
                raise
            raise PanelError(f"the simulator stopped unexpectedly ({died['why']}; its log: {died['log']}); press "
                             "“Restart simulator”") from None


ACTIONS: dict[str, str] = {
    "start_training": "start_training", "start_sweep": "start_sweep", "stop_job": "stop_job", "restart_job": "restart_job",
    "evaluate": "evaluate", "export": "export", "start_sim": "start_sim", "stop_sim": "stop_sim",
    "restart_sim": "restart_sim", "set_target": "set_target", "play": "play", "stop_policy": "stop_policy",
    "start_gateway": "start_gateway", "stop_gateway": "stop_gateway", "emergency_stop": "emergency_stop",
    "real_dry_run": "real_dry_run", "real_run": "real_run",
}
"""The actions a page may ask for (name -> backend method); nothing else is callable from outside."""
