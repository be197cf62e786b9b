"""The policy bridge: newest feedback -> the task's observation -> an action -> one T:102, every period.

Safety, in the order a step applies it: a driver stopped on implausible feedback ends the run with its error;
an implausible newest frame, stale feedback or no action in time means hold (no new target; the servos keep
the last one) and say so; the policy's action becomes joint targets by policy.json's own convention
(``ActionConvention``, shared with the gateway); each joint's change per step is limited; the driver clamps
every frame it sends to the calibrated safe box. The relative-action integrator follows what was actually
sent, so a limit never winds it up. Every step is logged, hold steps included. The summary is taken after the
final hold, from the driver's own count of what it sent: every joint frame, the start move and the hold included.
"""

from __future__ import annotations

import enum
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from roarm_lab.assets.joint_table import JOINTS, SERVO
from roarm_lab.assets.kinematics import firmware_mm_to_base
from roarm_lab.policy.spec import PolicyLoadError, load_spec
from roarm_lab.policy import ActionConvention, ClientTargets, NotFiniteError
from roarm_lab.real.driver import MOVE_SPEED_RAD_S, DriverError, RoArmDriver
from roarm_lab.real.observation import ArmObservation
from roarm_lab.registry import task_profile
from roarm_lab.real.steplog import StepLog, plot_tracking



class BridgeError(RuntimeError):
    pass


class ActionSource(Protocol):
    def __call__(self, obs: np.ndarray) -> tuple[np.ndarray | None, dict[str, bool]]:
        """Raw policy action (None: none in time) and flags."""


class LocalPolicy:
    """ONNX Runtime (or TorchScript) in this process, from the exported folder."""

    def __init__(self, export_dir: str | Path, backend: str = "onnx"):
        from roarm_lab.policy import LoadedPolicy

        self.policy = LoadedPolicy.load(export_dir, backend)

    def __call__(self, obs: np.ndarray) -> tuple[np.ndarray | None, dict[str, bool]]:
        action = self.policy.infer(obs)
        return (action, {}) if np.isfinite(action).all() else (None, {"not_finite": True})


class GatewayPolicy:
    """The policy gateway (issue 3's server) with a deadline inside the control period."""

    def __init__(self, endpoint: str, meta: dict[str, Any], deadline_ms: float, timeout_ms: float):
        from roarm_lab.gateway.client import GatewayClient

        self.deadline_ms = deadline_ms
        self.client = GatewayClient(endpoint, timeout_ms=timeout_ms, retries=0, name="roarm-real-bridge",
                                    config_hash=meta.get("config_hash"),
                                    expected={"task": meta["task"], "obs_size": meta["observation"]["size"],
                                              "action_size": meta["action"]["size"]}).connect()

    def __call__(self, obs: np.ndarray) -> tuple[np.ndarray | None, dict[str, bool]]:
        from roarm_lab.gateway.client import GatewayError, GatewayTimeout

        try:
            reply = self.client.infer(obs, deadline_ms=self.deadline_ms)
        except GatewayTimeout:
            return None, {"gateway_timeout": True}
        except GatewayError as err:  # not_finite, overloaded, ...: no action this step, hold
            return None, {f"gateway_{err.code}": True}
        if reply["flags"]["deadline_miss"]:
            return None, {"deadline_miss": True}
        return reply["action"], {"hash_mismatch": bool(reply["flags"]["hash_mismatch"])}

    def close(self) -> None:
        self.client.close()


@dataclass
class BridgeConfig:
    target_time_s: float = 4.0
    stale_after_s: float = 0.25
    max_step_rad: float = SERVO.max_step_rad
    """Largest change of any joint target per control step (the servo spec's, 3 rad/s at 30 Hz)."""
    start_speed_rad_s: float = MOVE_SPEED_RAD_S
    """The move to the start pose: each step, and the servos' speed (the driver caps it at ``SERVO.speed_rad_s``)."""
    start_tolerance_rad: float = 0.05
    start_timeout_s: float = 20.0
    success_m: float | None = None
    """A target counts as reached within this distance (m); None: the task's success threshold."""
    duration_s: float | None = None
    """Stop after this long (else when the targets are done)."""
    log_dir: Path = Path("logs/real/run")
    stop_file: Path | None = None
    checkpoint_every_s: float = 5.0
    say: Callable[[str], None] = field(default=print, repr=False)


class HoldReason(enum.Enum):
    """Why a control step sends nothing and the arm holds its last command."""

    NONE = "none"
    STALE = "stale"
    """The newest feedback is older than ``stale_after_s`` (a pulled cable, a stalled firmware)."""
    NO_ACTION = "no_action"
    """No usable action: a gateway miss or error, or a non-finite action."""
    FAULT = "fault"
    """The newest frame cannot be true (``plausibility.py``): the driver holds the last command it sent."""


@dataclass
class _LoopState:
    """What one control step hands to the next."""

    last_cmd: np.ndarray
    """The last T:102 joint command (all joints, URDF rad)."""
    last_action: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    targets: ClientTargets = field(default_factory=ClientTargets)
    holding: HoldReason = HoldReason.NONE


def refuse_unsourced_terms(meta: dict[str, Any]) -> None:
    """Refuse a policy that observes what the arm cannot report: an object's pose (its task's profile names those
    terms). The arm's feedback gives joints and the hand; a pose from a camera is a later step."""
    profile = task_profile(str(meta.get("task")))
    needs = [t["name"] for t in meta["observation"]["terms"] if t["name"] in profile.object_terms]
    if needs:
        raise BridgeError(f"this policy ({meta.get('task')}) observes {needs}, an object's pose, and the real arm has "
                          "no source for it yet (a camera pose estimate is a later step); run it in the simulator "
                          "instead (scripts/play.py or the simulator service)")


class Bridge:
    def __init__(self, driver: RoArmDriver, meta: dict[str, Any], policy: ActionSource, targets: np.ndarray,
                 cfg: BridgeConfig):
        if len(targets) == 0:
            raise BridgeError("no targets: give --target X Y Z, --targets FILE or --random N")
        self.driver = driver
        self.meta = meta
        self.policy = policy
        self.targets = np.asarray(targets, dtype=np.float64).reshape(-1, 3)
        self.cfg = cfg
        self.period = float(meta["control_period_s"])
        refuse_unsourced_terms(meta)
        self.observe = ArmObservation(meta)
        if cfg.success_m is None:
            cfg.success_m = self.observe.success_threshold_m
        self.convention = ActionConvention(meta)
        names = [j.name for j in JOINTS]
        self.arm_ids = [names.index(n) for n in self.convention.joint_names]
        self.start_pose = np.array([meta["default_joint_pos"][n] for n in names])
        self.log = StepLog(cfg.log_dir / "steps.npz")
        self._interrupts = 0
        self._finals: list[float] = []
        self._commanded = False  # a run refused before its first command leaves the arm as it found it
        self.error: str | None = None
        """Why the run ended early (a ``BridgeError`` or ``DriverError``), for the summary; None if it did not."""

    # ------------------------------------------------------------------ signals
    def _on_sigint(self, *_: Any) -> None:
        self._interrupts += 1
        if self._interrupts == 1:
            self.cfg.say("Ctrl-C: finishing (hold the pose and stop); Ctrl-C again for an immediate torque-hold")

    def _abort_requested(self) -> bool:
        return self._interrupts >= 2 or (self.cfg.stop_file is not None and self.cfg.stop_file.exists())

    # ------------------------------------------------------------------ phases
    def move_to_start(self) -> None:
        """Slew to the policy's start pose at ``start_speed_rad_s``, then verify arrival; hold while a frame is a
        fault."""
        fb = self.driver.wait_feedback(timeout=2.0)
        if fb is None:
            raise self.driver.error or BridgeError("no feedback before the move to the start pose")
        q = self.driver.calibration.clamp(fb.q)  # as the driver will send it
        goal = self.start_pose.copy()
        goal[5] = q[5]  # the gripper stays where it is
        inside = self.driver.calibration.clamp(goal)
        if not np.allclose(inside[:5], goal[:5]):
            names = [j.short for j, out in zip(JOINTS[:5], np.abs(inside - goal)[:5] > 1e-9) if out]
            raise BridgeError(f"the policy's start pose is outside this arm's calibrated limits on {names}: "
                              f"widen them in the calibration YAML if the arm can go there, or retrain")
        goal = inside
        step = self.cfg.start_speed_rad_s * self.period
        self.cfg.say(f"moving to the start pose {np.round(goal, 3).tolist()} at {self.cfg.start_speed_rad_s} rad/s")
        deadline = time.monotonic() + self.cfg.start_timeout_s
        next_tick = time.monotonic()
        self._commanded = True
        while True:
            if self._abort_requested():
                raise BridgeError("stopped during the move to the start pose")
            if self.driver.error is not None:
                raise self.driver.error
            if self.driver.fault is None:
                q = q + np.clip(goal - q, -step, step)
                self.driver.command_joints(q, speed_rad_s=self.cfg.start_speed_rad_s)
            fb = self.driver.feedback()
            if self.driver.dry_run and np.allclose(q, goal):
                self.cfg.say("dry-run: start pose commanded, arrival not verified (nothing was sent)")
                return
            if fb is not None and np.allclose(q, goal) and np.all(np.abs(fb.q - goal)[:5] < self.cfg.start_tolerance_rad):
                self.cfg.say("at the start pose")
                return
            if time.monotonic() > deadline:
                err = None if fb is None else dict(zip([j.short for j in JOINTS], np.round(fb.q - goal, 3)))
                raise BridgeError(f"the arm did not reach the start pose in {self.cfg.start_timeout_s:.0f} s "
                                  f"(error per joint: {err}); is it blocked, or torque off?")
            next_tick += self.period
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def run(self) -> dict[str, Any]:
        """Start the driver (if it is not), move to the start pose, control; whatever happens once the arm was
        commanded, torque-hold.

        Returns the summary, taken after the hold is written. On an error ``self.error`` says why (and
        ``summary()`` carries it) before the error is raised.
        """
        previous = signal.signal(signal.SIGINT, self._on_sigint) if _main_thread() else None
        try:
            self.driver.start()
            self.move_to_start()
            self._control()
        except (BridgeError, DriverError) as err:
            self.error = str(err)
            raise
        finally:
            if self.driver.running and self._commanded:
                self.driver.stop()  # torque-hold, whatever happened
                self.driver.flush()  # ... written before the summary counts the frames sent
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            self.log.save()
        return self.summary()

    def _control(self) -> None:
        """The control loop: one ``step`` per period on a fixed schedule, each logged; targets change on time."""
        cfg = self.cfg
        fb0 = self.driver.feedback()
        loop = _LoopState(last_cmd=self.driver.calibration.clamp(fb0.q))  # what the driver would send
        loop.last_cmd[self.arm_ids] = self.start_pose[self.arm_ids]
        loop.last_action = np.zeros(self.convention.size, np.float32)
        self.observe.reset()
        finals = self._finals
        start = time.monotonic()
        next_tick, last_tick, last_save = start, start, start
        target_index = 0
        total_s = cfg.duration_s if cfg.duration_s is not None else len(self.targets) * cfg.target_time_s
        while True:
            now = time.monotonic()
            elapsed = now - start
            if elapsed >= total_s or self._interrupts or self._abort_requested():
                break
            index = int(elapsed // cfg.target_time_s)
            if index != target_index:  # the previous target's segment ends: its final error counts
                finals.append(self.log.last_error())
                target_index = index
            record = self.step(loop, now, self.targets[index % len(self.targets)])
            self.log.append(t=now - start, interval=now - last_tick, target_index=index, **record)
            last_tick = now
            if now - last_save > cfg.checkpoint_every_s:
                self.log.checkpoint()
                last_save = now
            next_tick += self.period
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.monotonic()  # overran: restart the schedule rather than burst
        if self._abort_requested():
            cfg.say("stop requested: torque-hold and exit")
        finals.append(self.log.last_error())

    def step(self, loop: "_LoopState", now: float, target: np.ndarray) -> dict[str, Any]:
        """One control step: newest feedback, the task's observation, an action, one bounded T:102; or a hold.

        Returns the step's log record (without the times the loop adds).
        """
        if self.driver.error is not None:
            raise self.driver.error
        fb, fault = self.driver.feedback(), self.driver.fault
        age = np.inf if fb is None else now - fb.received
        record: dict[str, Any] = {
            "feedback_age": min(age, 1e3), "q": np.full(len(JOINTS), np.nan) if fb is None else fb.q,
            "hand": np.full(3, np.nan), "target": target, "obs": np.full(self.observe.size, np.nan, np.float32),
            "action": np.zeros(self.convention.size, np.float32), "stale": False, "no_action": False,
            "fault": False, "deadline_miss": False, "step_limited": False, "box_clamped": False, "sent": False}
        if fault is not None:
            record["fault"] = True
            self._hold(loop, HoldReason.FAULT, f"{fault}: holding the last command")
        elif age > self.cfg.stale_after_s:
            record["stale"] = True
            self._hold(loop, HoldReason.STALE, f"feedback stale ({age:.2f} s): holding the pose")
        else:
            if loop.holding in (HoldReason.STALE, HoldReason.FAULT):
                self.observe.reset()  # the finite-difference velocity restarts, as after a reset in sim
            if loop.holding is HoldReason.FAULT and self.driver.last_sent is not None:
                loop.last_cmd = self.driver.last_sent  # what the servos hold: a target written just before the fault
                loop.targets.target = loop.last_cmd[self.arm_ids].astype(np.float32)  # may have been held back
            hand = firmware_mm_to_base(fb.tcp_mm)
            obs = self.observe(fb.q, hand, target, loop.last_action, loop.targets.target)
            raw, pflags = self.policy(obs)
            record.update(hand=hand, obs=obs, deadline_miss=bool(pflags.get("deadline_miss")))
            arm = self._arm_targets(raw, obs, loop.targets, pflags)
            if arm is None:
                record["no_action"] = True
                self._hold(loop, HoldReason.NO_ACTION,
                           f"no usable action ({', '.join(pflags) or 'policy'}): holding the pose")
            else:
                self._hold(loop, HoldReason.NONE, "")
                record.update(self._send(loop, arm), action=np.asarray(raw, np.float32))
                loop.last_action = record["action"]
        hand = record["hand"]
        record["error"] = float(np.linalg.norm(hand - target)) if np.all(np.isfinite(hand)) else np.nan
        record["command"] = loop.last_cmd.copy()
        return record

    def _send(self, loop: "_LoopState", arm: np.ndarray) -> dict[str, bool]:
        """The arm joints' new targets, each moved at most ``max_step_rad`` from the last command, through the
        driver (which clamps to the calibrated box); the integrator then follows what was actually sent."""
        desired = loop.last_cmd.copy()
        desired[self.arm_ids] = arm
        wanted = desired - loop.last_cmd
        change = np.clip(wanted, -self.cfg.max_step_rad, self.cfg.max_step_rad)
        sent = self.driver.command_joints(loop.last_cmd + change, speed_rad_s=None)  # bounded per step above
        loop.last_cmd = sent.q
        loop.targets.target = loop.last_cmd[self.arm_ids].astype(np.float32)
        return {"step_limited": bool(np.any(np.abs(change - wanted) > 1e-9)), "box_clamped": bool(sent.clamped.any()),
                "sent": not self.driver.dry_run}

    def _hold(self, loop: "_LoopState", reason: "HoldReason", message: str) -> None:
        """Say when the hold reason changes (once, not every step)."""
        if reason is loop.holding:
            return
        if reason is HoldReason.NONE:
            self.cfg.say("actions back: policy resumes" if loop.holding is HoldReason.NO_ACTION
                         else "feedback back: policy resumes")
        else:
            self.cfg.say(message)
        loop.holding = reason

    def _arm_targets(self, raw: np.ndarray | None, obs: np.ndarray, state: ClientTargets,
                     pflags: dict[str, bool]) -> np.ndarray | None:
        """The action joints' targets by policy.json's convention; None (hold) without a finite action."""
        if raw is None:
            return None
        try:
            return self.convention.to_targets(np.asarray(raw, np.float32), obs, state)[0]
        except NotFiniteError:  # never a NaN towards the arm, and the integrator is left as it was
            pflags["not_finite"] = True
            return None

    # ------------------------------------------------------------------ report
    def summary(self) -> dict[str, Any]:
        """The run in figures. Frames sent and their distance outside the box are the driver's count of what it
        wrote (policy, start move, hold), not the log's."""
        data = self.log.arrays()
        steps = len(data.get("t", ()))
        flags = {k: int(data[k].sum()) if steps else 0 for k in
                 ("stale", "no_action", "fault", "step_limited", "box_clamped")}
        jitter = np.abs(data["interval"][1:] - self.period) * 1000.0 if steps > 1 else np.zeros(1)
        finals_arr = np.array(self._finals, dtype=float)
        known = finals_arr[np.isfinite(finals_arr)]  # a target that ended in a hold has no measured error
        stats = self.driver.stats
        summary = {
            "steps": steps, "duration_s": float(data["t"][-1]) if steps else 0.0,
            "period_s": self.period,
            "jitter_ms": {"p50": float(np.percentile(jitter, 50)), "p99": float(np.percentile(jitter, 99)),
                          "max": float(jitter.max())},
            "targets": int(len(finals_arr)),
            "reached": int(np.sum(finals_arr < self.cfg.success_m)),
            "reached_fraction": float(np.mean(finals_arr < self.cfg.success_m)) if len(finals_arr) else 0.0,
            "final_error_m": {"median": float(np.median(known)) if len(known) else None,
                              "p90": float(np.percentile(known, 90)) if len(known) else None},
            "joint_frames_sent": stats.joint_commands_sent,
            "max_command_outside_safe_box_rad": stats.max_command_outside_box_rad,
            "faults": stats.faults, "error": self.error,
            **{f"{k}_steps": v for k, v in flags.items()},
            "driver": stats.as_dict(),
        }
        return summary


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def write_report(bridge: Bridge, summary: dict[str, Any] | None = None) -> None:
    """steps.npz, summary.json (``summary``, or the bridge's own: a run that raised has one too) and the plot."""
    from roarm_lab.utils.io import atomic_write_json

    bridge.log.save()
    atomic_write_json(bridge.cfg.log_dir / "summary.json", summary if summary is not None else bridge.summary())
    plot_tracking(bridge.log.arrays(), bridge.cfg.log_dir / "tracking_error.png", bridge.cfg.success_m)


def load_meta(export_dir: str | Path) -> dict[str, Any]:
    """policy.json, checked as the gateway checks it (limits inside the joint table's box, finite numbers)."""
    try:
        return load_spec(export_dir)[0]
    except PolicyLoadError as err:
        raise BridgeError(str(err)) from None
