"""The control plane's handle on the simulator service: one child process, one client, one lock.

Faces call from worker threads; the lock keeps one request at a time on the client's socket. The service dies
with the process that started it (``ServiceProcess``); if it dies first, the link remembers how (``died``) until
the next start. Nothing here touches the real arm.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from roarm_lab.control import rules
from roarm_lab.control.errors import ControlError
from roarm_lab.control.models import Joint, JointState, PolicyRunResult, TargetsResult
from roarm_lab.control.process import exit_words
from roarm_lab.control.runs import rel_path
from roarm_lab.control.settings import LabSettings
from roarm_lab.sim_service.client import SimClient, SimError, SimTimeout
from roarm_lab.sim_service.secret import SECRET_ENV, new_secret
from roarm_lab.utils.services import ServiceError, ServiceProcess

MAX_SETTLE_STEPS = 600
TRACE_POINTS = 20
"""Hand-error samples a policy run's status carries (the service keeps 60)."""


def short_name(joint: str) -> str:
    from roarm_lab.assets.joint_table import joint as lookup

    try:
        return lookup(joint).short
    except KeyError:
        return joint


def joint_state(state: dict[str, Any]) -> JointState:
    arm = state["arm"]
    goal = arm.get("goal") or [None] * len(arm["joint_names"])
    joints = [Joint(name=short_name(n), position_rad=_r(q), commanded_rad=_r(c), goal_rad=_r(g), lower_rad=_r(lo),
                    upper_rad=_r(hi))
              for n, q, c, g, lo, hi in zip(arm["joint_names"], arm["measured"], arm["commanded"], goal, arm["lower"],
                                            arm["upper"])]
    names = state["joint_names"]
    gripper = next((q for n, q in zip(names, state["joint_pos"]) if n not in arm["joint_names"]), None)
    return JointState(step=state["step"], sim_time_s=round(state["sim_time_s"], 3), joints=joints,
                      gripper_rad=_r(gripper), hand_m=[_r(v) for v in state["hand_b"]],
                      target_m=[_r(v) for v in state["target_b"]], error_m=round(state["error_m"], 5),
                      within_threshold=state["within_threshold"], threshold_m=state["threshold_m"],
                      controller=state.get("controller"))


class SimLink:
    def __init__(self, settings: LabSettings):
        self.settings = settings
        self.proc: ServiceProcess | None = None
        self.client: SimClient | None = None
        self.spec: dict[str, Any] | None = None
        self.params: dict[str, Any] = {"task": settings.default_task, "headless": True, "realtime": True, "seed": 0,
                                       "randomize": False}
        """What the last start asked for (a restart repeats it)."""
        self.died: dict[str, Any] | None = None
        """How the service ended when it was not stopped: exit code, in words, its log's tail."""
        self.starting = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def running(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def check(self) -> None:
        """Notice a service that died by itself: remember how, and drop the link."""
        if self.proc is not None and not self.proc.alive() and self._lock.acquire(timeout=1.0):
            try:
                self._note_death()
            finally:
                self._lock.release()

    def _note_death(self) -> None:
        if self.proc is not None and not self.proc.alive():
            code = self.proc.proc.returncode
            self.died = {"exit_code": code, "why": exit_words(code), "log_tail": self.proc.log_tail(6),
                         "log": rel_path(self.settings.paths, self.proc.log_path), "at": time.time()}
            self._drop()

    def start(self, task: str, headless: bool, realtime: bool, seed: int, randomize: bool) -> dict[str, Any]:
        if not self._lock.acquire(blocking=False):
            raise ControlError("the simulator is busy starting or answering another request; try again in a moment")
        try:
            self.starting = True
            return self._start(task, headless, realtime, seed, randomize)
        finally:
            self.starting = False
            self._lock.release()

    def _start(self, task: str, headless: bool, realtime: bool, seed: int, randomize: bool) -> dict[str, Any]:
        if self.running():
            raise ControlError(f"a simulator of {self.spec['task']} is already running (started "
                               f"{time.strftime('%H:%M:%S', time.localtime(self.proc.started))}); use it, or call "
                               "stop_sim first")
        self._drop()
        if not headless and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ControlError("headless=false needs a display (DISPLAY is not set here); start with headless=true "
                               "and look at the scene with render_sim")
        paths = self.settings.paths
        argv = [self.settings.python, "-m", "roarm_lab.sim_service", "--bind", "tcp://127.0.0.1:*", "--task", task,
                "--seed", str(seed), "--policy-root", str(paths.runs), "--data-dir", str(paths.sim)]
        argv += ["--realtime"] * realtime + ["--randomize"] * randomize + ["--viewer"] * (not headless)
        secret = new_secret()  # handed over in its environment: only this link can drive or shut it down
        proc = ServiceProcess(argv, r"endpoint=(\S+)", paths.sim_log, cwd=paths.root,
                              env={**os.environ, SECRET_ENV: secret})
        try:
            proc.start()
        except ServiceError as err:
            raise ControlError(f"the simulator did not start: {err}") from None
        self.proc, self.client = proc, SimClient(proc.match.group(1), secret=secret, timeout_ms=60000,
                                                 name="roarm-lab control")
        reply = self.client.hello()
        self.spec, self.died = reply["spec"], None
        self.params = {"task": task, "headless": headless, "realtime": realtime, "seed": seed,
                       "randomize": randomize}
        return reply

    def stop(self) -> bool:
        with self._lock:
            was = self.running()
            self.died = None
            if was:
                try:
                    self.client.call("shutdown", timeout_ms=5000)
                except (SimError, SimTimeout):
                    pass
            self._drop()
            return was

    def _drop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.proc is not None:
            self.proc.stop()
        self.proc = self.client = self.spec = None

    # ------------------------------------------------------------------ requests
    def call(self, kind: str, timeout_ms: float | None = None, wait_s: float = -1, **fields: Any) -> dict[str, Any]:
        """One request; ``wait_s`` >= 0 gives up (ControlError) if another request holds the simulator that long."""
        for (request, name), allowed in rules.SIM_REQUEST_LIMITS.items():
            if request == kind and name in fields:
                allowed.check(name, fields[name])
        if not self._lock.acquire(timeout=wait_s):
            raise ControlError(f"the simulator is busy with another request; '{kind}' was not sent")
        try:
            if not self.running():
                self._note_death()
                if self.died:
                    raise ControlError(f"the simulator stopped unexpectedly ({self.died['why']}; its log "
                                       f"{self.died['log']} ends with: {self.died['log_tail'][-300:]}); call start_sim")
                raise ControlError("no simulator is running: call start_sim first")
            try:
                return self.client.call(kind, timeout_ms=timeout_ms, **fields)
            except SimError as err:
                raise ControlError(_advice(err)) from None
            except SimTimeout as err:
                raise ControlError(f"{err}; it may be busy: try get_joint_state, or stop_sim and start_sim") from None
        finally:
            self._lock.release()

    def state(self) -> JointState:
        return joint_state(self.call("joint_state")["state"])

    def settle(self, steps: int) -> dict[str, Any]:
        """Let ``steps`` control steps pass: stepped by hand, or waited for in real time."""
        if self.spec["realtime"]:
            time.sleep(min(steps, MAX_SETTLE_STEPS) * self.spec["control_period_s"])
            return self.call("joint_state")["state"]
        return self.call("step", steps=steps)["state"]

    # ------------------------------------------------------------------ policy runs
    def run_policy(self, source: dict[str, str], target: list[float] | None, max_steps: int,
                   until_reached: bool) -> PolicyRunResult:
        """Start a closed-loop policy run and answer at once with its id: the service steps it (in real time, or
        as fast as it can between requests), so it can be watched (``policy_run``) and stopped (``stop_policy``)."""
        fields: dict[str, Any] = {"policy": source, "max_steps": max_steps, "until_reached": until_reached,
                                  "background": True}
        if target is not None:
            fields["target"] = self.position(target, "target")
        reply = self.call("run_policy", timeout_ms=120000, **fields)
        return policy_run(reply["policy"], joint_state(reply["state"]))

    def policy_run(self, run_id: str | None = None) -> PolicyRunResult:
        """The current (or last) policy run; ``run_id`` must name it."""
        reply = self.call("status")
        run = reply.get("policy") or {}
        if run_id is not None and run.get("run_id") != run_id:
            raise ControlError(f"no policy run '{run_id}' in this simulator (the newest is "
                               f"{run.get('run_id') or 'none'}); it ended with an earlier simulator or never existed")
        return policy_run(run, joint_state(reply["state"]))

    def stop_policy(self, run_id: str | None = None) -> PolicyRunResult:
        """End the running policy (``run_id``: only that run); the arm holds where it is."""
        fields = {} if run_id is None else {"run_id": run_id}
        reply = self.call("stop_policy", timeout_ms=5000, **fields)
        return policy_run(reply["policy"], joint_state(reply["state"]))

    def reset(self, target: list[float] | None) -> JointState:
        """The arm back at its home pose (a running policy ends); a new hand target if one is given."""
        fields = {} if target is None else {"target": self.position(target, "target")}
        return joint_state(self.call("reset", **fields)["state"])

    def set_target(self, target: list[float]) -> JointState:
        """Move the hand target (m, base frame); refused with the nearest reachable point if out of reach."""
        return joint_state(self.call("set_target", target=self.position(target, "target"))["state"])

    def film(self, source: dict[str, str], target: list[float] | None, steps: int, frames: int, camera: str,
             width: int, height: int) -> dict[str, Any]:
        """A policy rollout from the current state as a filmstrip PNG (bytes) and a GIF file."""
        fields: dict[str, Any] = {"policy": source, "steps": steps, "frames": frames, "camera": camera,
                                  "width": width, "height": height,
                                  "name": f"film-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"}
        if target is not None:
            fields["target"] = self.position(target, "target")
        reply = self.call("film", timeout_ms=180000, **fields)
        reply["gif"] = rel_path(self.settings.paths, Path(reply["gif"]))
        return reply

    @staticmethod
    def position(values: Any, what: str) -> list[float]:
        if not isinstance(values, (list, tuple)) or len(values) != 3 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise ControlError(f"{what} must be three finite numbers [x, y, z] in metres (base frame), got {values!r}")
        return [float(v) for v in values]

    @property
    def arm_names(self) -> list[str]:
        return [short_name(n) for n in self.spec["action"]["joint_names"]]

    def joint_vector(self, values: list[float] | dict[str, float], base: list[float], what: str) -> list[float]:
        """A full arm-joint vector from a list (all joints) or a map of some joints (short or URDF names)."""
        names = self.arm_names
        urdf = self.spec["action"]["joint_names"]
        if isinstance(values, dict):
            out = list(base)
            for key, value in values.items():
                if key in names:
                    out[names.index(key)] = value
                elif key in urdf:
                    out[urdf.index(key)] = value
                else:
                    raise ControlError(f"unknown joint '{key}' in {what}; joints: {names}")
        else:
            out = list(values)
            if len(out) != len(names):
                raise ControlError(f"{what} needs {len(names)} values, one per joint {names}, got {len(out)}")
        bad = [n for n, v in zip(names, out) if not isinstance(v, (int, float)) or not math.isfinite(v)]
        if bad:
            raise ControlError(f"{what}: joints {bad} are not finite numbers (NaN or Inf); give radians")
        return [float(v) for v in out]


    def move(self, values: list[float] | dict[str, float], steps: int, relative: bool) -> TargetsResult:
        """Hold the arm joints at targets (absolute, or relative to the current ones) and let ``steps`` pass."""
        rules.SETTLE_STEPS.check("steps", steps)
        before = self.call("joint_state")["state"]
        commanded = before["arm"]["commanded"]
        if relative:
            delta = self.joint_vector(values, [0.0] * len(commanded), "joints_delta")
            requested = [c + d for c, d in zip(commanded, delta)]
        else:
            requested = self.joint_vector(values, commanded, "targets")
        reply = self.call("set_joint_targets", targets=requested)["state"]
        after = self.settle(steps) if steps else reply
        names = self.arm_names
        return TargetsResult(requested_rad=[_r(v) for v in requested], applied_rad=[_r(v) for v in reply["arm"]["goal"]],
                             clamped=[n for n, c in zip(names, reply["clamped"]) if c], steps_simulated=steps,
                             state=joint_state(after),
                             moved_rad=[_r(a - b) for a, b in zip(after["arm"]["measured"], before["arm"]["measured"])])


def _r(value: float | None) -> float | None:
    """4 decimals: 0.1 mm and 0.1 mrad, finer than the arm can do, and short for a chat."""
    return None if value is None else round(float(value), 4)


def policy_run(run: dict[str, Any], state: JointState) -> PolicyRunResult:
    """A policy run's status from the service's record of it."""
    return PolicyRunResult(
        run_id=run.get("run_id"), source=run.get("source", ""), done=bool(run.get("done", True)),
        stopped=run.get("stopped"), steps=run.get("steps", 0), max_steps=run.get("max_steps"),
        reached=bool(run.get("reached")), reached_step=run.get("reached_step"),
        initial_error_m=_r(run.get("initial_error_m")), final_error_m=_r(run.get("final_error_m")),
        min_error_m=_r(run.get("min_error_m")), error_trace_cm=[round(100 * e, 1) for e in
                                                                    run.get("error_trace_m", [])][-TRACE_POINTS:],
        trace_every_steps=run.get("trace_every_steps", 1), hold_steps=run.get("hold_steps", 0),
        target_m=[round(v, 4) for v in run.get("target_b", state.target_m)], hand_m=state.hand_m)


def _advice(err: SimError) -> str:
    hints = {"not_started": "call start_sim", "busy": "a policy run is in progress; wait for it or stop_policy",
             "realtime": "this simulator runs in real time", "unreachable": "choose a target inside the workspace"}
    hint = hints.get(err.code)
    return err.message + (f" ({hint})" if hint and hint not in err.message else "")
