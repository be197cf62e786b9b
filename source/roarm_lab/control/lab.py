"""The lab: the state every face shares and the actions it offers (the control plane's one entry point).

The MCP server and the panel each hold one ``Lab``; every rule they obey is applied here or below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roarm_lab.control.errors import ControlError
from roarm_lab.control.gateway import GatewayLink
from roarm_lab.control.jobs import JobStore
from roarm_lab.control.models import EstopResult, GatewayInfo, InferResult
from roarm_lab.control.real import RealArm
from roarm_lab.control.runs import Run, find_run, resolve_export
from roarm_lab.control.settings import LabSettings
from roarm_lab.control.sim import SimLink
from roarm_lab.control.training import Training


class Lab:
    def __init__(self, settings: LabSettings):
        self.settings = settings
        self.paths = settings.paths
        self.store = JobStore(settings.paths)
        self.sim = SimLink(settings)
        self.gateway = GatewayLink(settings)
        self.training = Training(settings, self.store)
        self.real = RealArm(settings, self.store)

    def run(self, ref: str) -> Run:
        """A run by id, training job id or path inside the runs folder."""
        return find_run(self.paths, self.store, ref)

    def export_of(self, ref: str) -> Path:
        """The exported/ folder of a run (or a path to one), inside the runs folder, symlinks followed."""
        return resolve_export(self.paths, self.store, ref)

    def serve(self, ref: str) -> GatewayInfo:
        """Serve a run's export on the gateway."""
        return self.gateway.start(self.export_of(ref))

    def policy_source(self, policy: str | None, use_gateway: bool) -> dict[str, str]:
        """Where the simulator takes actions from: the running gateway, or a run's export (checked here)."""
        if use_gateway:
            if not self.gateway.running():
                raise ControlError("no gateway is running: call start_gateway(policy) first, or use_gateway=false")
            return {"gateway": self.gateway.endpoint}
        if not policy:
            raise ControlError("name the policy (a run id from list_runs) or set use_gateway=true")
        return {"export": str(self.export_of(policy))}

    def infer(self, policy: str, observation: list[float] | dict[str, list[float]] | None) -> InferResult:
        """One action of an exported policy on an observation (given, or captured from the simulator); moves
        nothing. The joint targets follow policy.json's action convention from the measured pose."""
        import numpy as np

        from roarm_lab.policy import ClientTargets, LoadedPolicy

        if not policy:
            raise ControlError("name the policy: a run id from list_runs or an exported/ folder")
        folder = self.export_of(policy)
        loaded = LoadedPolicy.load(folder, "onnx")
        given = observation is not None
        if observation is None:
            observation = self.sim.call("observation")["observation"]["policy"]["vector"]
        parts: dict[str, Any] | Any = observation
        values = list(parts.values()) if isinstance(parts, dict) else [parts]
        try:
            arrays = [np.asarray(v, dtype=np.float64) for v in values]
        except (TypeError, ValueError):
            raise ControlError("observation must be numbers (a flat vector, or a map of term name -> numbers)") from None
        if not all(np.isfinite(a).all() for a in arrays):
            raise ControlError("observation contains NaN or Inf")
        try:
            obs = loaded.assemble({k: np.asarray(v, np.float32) for k, v in parts.items()}
                                  if isinstance(parts, dict) else np.asarray(parts, np.float32))
        except Exception as err:  # the loader's size check names the parts
            raise ControlError(f"observation does not fit the policy: {getattr(err, 'message', err)}") from None
        action = loaded.infer(obs)
        targets, clipped = loaded.to_targets(action, obs, ClientTargets())
        names = list(loaded.meta["action"]["names"])
        return InferResult(policy=str(folder), observation_source="given" if given else "simulator",
                           action=[float(a) for a in action], joint_targets_rad=[float(t) for t in targets],
                           clipped=[n for n, c in zip(names, clipped) if c])

    def emergency_stop(self) -> EstopResult:
        """Latch the real arm's stop file and signal every bridge, then stop a policy running in the simulator."""
        signalled = self.real.emergency_stop()
        sim_stopped = False
        if self.sim.running():
            try:
                result = self.sim.call("stop_policy", timeout_ms=1500, wait_s=0.5)
                sim_stopped = bool(result["policy"].get("stopped"))
            except Exception:  # the arm comes first: a busy simulator must not fail the stop
                sim_stopped = False
        stop_file = str(self.settings.stop_file)
        message = (f"stop file written ({stop_file}); " + (f"real-arm runs {signalled} told to torque-hold and exit"
                   if signalled else "no real-arm run was active") + ". Real runs are refused until a person checks "
                   "the arm and deletes the stop file.")
        return EstopResult(stop_file=stop_file, real_jobs_signalled=signalled, sim_policy_stopped=sim_stopped,
                           message=message)

    def close(self) -> None:
        """Stop the helper services (jobs keep running: they outlive the face by design)."""
        self.sim.stop()
        self.gateway.stop()
