"""The real arm: status, runs of ``scripts/run_real.py`` as jobs, the emergency stop.

Safety lives here, not in a face's dialog: motion needs ``--allow-real-arm`` on the face's server and a
confirmation of each run by the user (the face asks; anything but an explicit yes, including a client that
cannot ask, refuses the run). ``dry_run`` (the default) checks the policy and targets and sends nothing.
The emergency stop writes the bridge's stop file (it torque-holds and exits; new runs are refused until a
person deletes the file) and signals every running bridge; it never asks.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any

from roarm_lab.control import rules
from roarm_lab.control.errors import ControlError
from roarm_lab.control.jobs import JobStore, new_job_id
from roarm_lab.control.models import RealArmStatus, RealRunResult
from roarm_lab.control.runfiles import read_json
from roarm_lab.control.runs import rel_path, resolve_export
from roarm_lab.control.settings import LabSettings
from roarm_lab.utils.io import atomic_write_text


def fingerprint(export: Path) -> str:
    """The exported policy as the user is asked about it: a short hash of policy.json and the ONNX file."""
    import hashlib

    from roarm_lab.utils.files import read_bounded

    digest = hashlib.sha256()
    for name in ("policy.json", "policy.onnx"):
        path = export / name
        digest.update(name.encode() + (read_bounded(path, 64 * 1024 * 1024, name) if path.is_file() else b"-"))
    return digest.hexdigest()[:12]


class RealArm:
    def __init__(self, settings: LabSettings, store: JobStore):
        self.settings = settings
        self.store = store

    # ------------------------------------------------------------------ status
    def active_job(self) -> Any:
        jobs = [j for j in self.store.all() if j.kind == "real" and self.store.counts_as_running(j)]
        return jobs[-1] if jobs else None

    def status(self, probe: bool) -> RealArmStatus:
        cfg = self.settings.real
        job = self.active_job()
        summaries = sorted(self.settings.paths.real.glob("real-*/*/summary.json"), key=lambda p: p.stat().st_mtime)
        out = RealArmStatus(
            motion_allowed=cfg.allow, robot=cfg.robot,
            port=cfg.port if cfg.robot == "serial" else (cfg.http if cfg.robot == "http" else None),
            port_present=Path(cfg.port).exists() if cfg.robot == "serial" else None,
            stop_latched=self.settings.stop_file.exists(), stop_file=rel_path(self.settings.paths, self.settings.stop_file),
            active_job=None if job is None else {"job_id": job.id, "state": job.state},
            last_summary=read_json(summaries[-1], "real-arm summary") if summaries else None)
        if probe:
            out.probe = self._probe(job)
        return out

    def configured(self) -> bool:
        """A real arm is in play: motion allowed on this server, a real-arm run of any face active, or a bridge
        started by hand running (``run_real.py`` announces itself beside the stop file)."""
        from roarm_lab.real.presence import live_bridges

        return (self.settings.real.allow or self.active_job() is not None
                or bool(live_bridges(self.settings.stop_file)))

    def port_missing(self) -> str | None:
        cfg = self.settings.real
        if cfg.robot == "serial" and not Path(cfg.port).exists():
            return (f"the serial port {cfg.port} does not exist: plug the arm in (USB), or name its port with "
                    "--serial-port in the server's command line")
        return None

    def _probe(self, job: Any) -> dict[str, Any]:
        """One feedback frame: opens the port, reads, closes; sends no motion command."""
        cfg = self.settings.real
        if job is not None:
            raise ControlError(f"real-arm job {job.id} holds the port; probe when it has ended")
        if cfg.robot == "emu":
            return {"note": "the emulator is started by each run (--robot emu); there is no arm to probe"}
        missing = self.port_missing()
        if missing:
            return {"error": missing}
        from roarm_lab.assets.joint_table import JOINTS
        from roarm_lab.real.calibration import Calibration
        from roarm_lab.real.driver import DriverError, RoArmDriver

        calibration = Calibration.load(cfg.calibration)
        driver = (RoArmDriver.http(cfg.http, calibration=calibration) if cfg.robot == "http"
                  else RoArmDriver.serial(cfg.port, calibration=calibration))
        try:
            driver.start(first_feedback_timeout_s=3.0)
        except DriverError as err:
            raise ControlError(str(err)) from None
        try:
            fb = driver.feedback()
            return {"joints_rad": {j.short: float(q) for j, q in zip(JOINTS, fb.q)},
                    "tcp_mm": [float(v) for v in fb.tcp_mm], "age_s": round(time.monotonic() - fb.received, 3),
                    "driver": driver.stats.as_dict()}
        finally:
            driver.close(hold=False)

    # ------------------------------------------------------------------ runs
    def plan(self, policy: str, targets: list[list[float]]) -> tuple[Path, dict[str, Any]]:
        """Check the policy and the targets (finite, reachable by the task's own workspace); describe the run."""
        from roarm_lab.real.bridge import load_meta
        from roarm_lab.sim_service.workspace import task_workspace

        try:
            export = resolve_export(self.settings.paths, self.store, policy)
        except ValueError as err:
            raise ControlError(str(err)) from None
        meta = load_meta(export)
        if not isinstance(targets, list) or not rules.REAL_TARGETS.low <= len(targets) <= rules.REAL_TARGETS.high:
            raise ControlError(f"targets must be a list of {rules.REAL_TARGETS.low}..{rules.REAL_TARGETS.high} [x, y, z] "
                               "hand positions (m, base frame)")
        workspace = task_workspace(meta["task"])
        for i, t in enumerate(targets):
            if not isinstance(t, (list, tuple)) or len(t) != 3 or not all(
                    isinstance(v, (int, float)) and math.isfinite(v) for v in t):
                raise ControlError(f"target {i} must be three finite numbers [x, y, z] in metres (base frame), got {t!r}")
            if not workspace.check(t).ok:
                raise ControlError(f"target {i}: {workspace.describe(t)}")
        cfg = self.settings.real
        names = list(meta["action"]["joint_names"])
        return export, {
            "policy": rel_path(self.settings.paths, export), "task": meta["task"], "robot": cfg.robot,
            "port": cfg.port if cfg.robot == "serial" else cfg.http if cfg.robot == "http" else "emulator",
            "calibration": cfg.calibration, "targets_m": [[float(v) for v in t] for t in targets],
            "seconds_per_target": cfg.target_time_s, "duration_s": len(targets) * cfg.target_time_s,
            "start_pose_rad": {n: meta["default_joint_pos"][n] for n in names},
            "limits": "policy.json's action limits, 0.1 rad per step at most, the calibrated safe box",
            "control_period_s": meta["control_period_s"], "fingerprint": fingerprint(export),
        }

    def refusal(self) -> str | None:
        """Why a real run cannot start now (checked before the user is asked, and again after)."""
        if not self.settings.real.allow:
            return ("real-arm motion is disabled on this server: restart it with --allow-real-arm (a person decides "
                    "that, in .vscode/mcp.json or on the command line); dry_run=true works without it")
        if self.settings.stop_file.exists():
            return (f"the emergency stop is latched ({rel_path(self.settings.paths, self.settings.stop_file)} exists): "
                    "a person must check the arm and delete that file")
        job = self.active_job()
        if job is not None:
            return f"real-arm run {job.id} is still running; wait for it or emergency_stop"
        return self.port_missing()

    def question(self, plan: dict[str, Any]) -> str:
        targets = "; ".join(f"[{x:.3f}, {y:.3f}, {z:.3f}]" for x, y, z in plan["targets_m"])
        return (f"Move the REAL RoArm-M3 ({plan['robot']} {plan['port']}) with policy {plan['policy']} (fingerprint "
                f"{plan['fingerprint']})? It goes to the "
                f"start pose, then holds each target for {plan['seconds_per_target']:.0f} s: {targets} (m, base frame), "
                f"about {plan['duration_s']:.0f} s in all. Keep clear; emergency_stop halts it.")

    def run(self, policy: str, targets: list[list[float]], dry_run: bool, confirmed: bool,
            asked_fingerprint: str | None = None) -> RealRunResult:
        """``asked_fingerprint``: the export's fingerprint in the question the user answered, when the answer came
        later than the plan (a chat's confirmation): the run is refused if the export changed meanwhile."""
        export, plan = self.plan(policy, targets)
        if not dry_run and asked_fingerprint is not None and asked_fingerprint != plan["fingerprint"]:
            raise ControlError("refused, nothing was sent: the exported policy changed while you were being asked "
                               f"(now {plan['fingerprint']}, asked about {asked_fingerprint}); ask again")
        if dry_run:
            return RealRunResult(dry_run=True, started=False, plan=plan, message="dry run: policy and targets "
                                 "checked; nothing was opened or sent. Call again with dry_run=false to move the arm.")
        why = self.refusal()
        if why:
            raise ControlError(f"refused, nothing was sent: {why}")
        if not confirmed:
            raise ControlError("refused, nothing was sent: the user did not confirm this run")
        cfg, paths = self.settings.real, self.settings.paths
        cmd = [self.settings.python, str(paths.script("run_real.py")), "--policy", str(export), "--robot", cfg.robot,
               "--target-time-s", str(cfg.target_time_s), "--stop-file", str(self.settings.stop_file)]
        cmd += {"serial": ["--port", cfg.port], "http": ["--http", cfg.http]}.get(cfg.robot, [])
        cmd += ["--calibration", cfg.calibration] if cfg.calibration else []
        for t in plan["targets_m"]:
            cmd += ["--target", *(repr(v) for v in t)]
        job_id = new_job_id("real")
        log_dir = paths.real_run_dir(job_id)
        record = self.store.start("real", [*cmd, "--log-dir", str(log_dir)], cwd=paths.root, task=plan["task"],
                                  run_dir=log_dir, params={"targets": plan["targets_m"], "policy": plan["policy"]},
                                  job_id=job_id)
        return RealRunResult(dry_run=False, started=True, plan=plan, job_id=record.id,
                             message=f"confirmed; the run started as job {record.id} (wait_for_job or "
                                     f"training_status('{record.id}')); emergency_stop halts it at once")

    # ------------------------------------------------------------------ emergency stop
    def emergency_stop(self) -> list[str]:
        """Latch the stop file, then SIGINT each running bridge twice (its immediate torque-hold)."""
        atomic_write_text(self.settings.stop_file, f"emergency stop at {time.ctime()}\n")
        signalled = []
        for job in self.store.all():
            if job.kind == "real" and self.store.counts_as_running(job):
                if self.store.signal_command(job, signal.SIGINT):
                    time.sleep(0.05)
                    self.store.signal_command(job, signal.SIGINT)
                    signalled.append(job.id)
        return signalled
