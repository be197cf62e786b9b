"""Where the simulator's closed-loop actions come from: an exported policy run here (ONNX Runtime), or the
policy gateway. Either way the action is the policy's raw output; the environment's own action term applies
the convention (as in training), so there is no second implementation of it here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from roarm_lab.sim_service.protocol import ProtocolError, SimErrorCode


def layout_mismatch(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> str | None:
    """Compare two observation layouts ({name, size} per term, in order); say what differs, or None."""
    exp = [(t["name"], int(t["size"])) for t in expected]
    act = [(t["name"], int(t["size"])) for t in actual]
    if exp == act:
        return None
    return f"the policy expects observation terms {exp}, this simulator's task gives {act}"


class ActionSource:
    """One raw action per flat observation; ``None`` means no action in time (the caller holds)."""

    description = ""
    terms: list[dict[str, Any]] = []

    def __call__(self, obs: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def batched(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """A torch callable over (n, obs) batches, for ``roarm_lab.rl.evaluate.evaluate``."""
        def run(obs: torch.Tensor) -> torch.Tensor:
            rows = [self(o) for o in obs.detach().cpu().numpy()]
            return torch.as_tensor(np.stack([r if r is not None else np.zeros_like(rows[0]) for r in rows]))
        return run

    def close(self) -> None:
        pass


class LocalSource(ActionSource):
    """The exported ONNX file run in this process (the gateway's loader: checks schema and sizes at load)."""

    def __init__(self, export_dir: str | Path):
        from roarm_lab.policy import LoadedPolicy, PolicyLoadError

        try:
            self.policy = LoadedPolicy.load(export_dir, "onnx")
        except (PolicyLoadError, OSError, KeyError, ValueError) as err:
            raise ProtocolError(SimErrorCode.POLICY_FAILED, f"cannot load the policy at {export_dir}: {err}") from None
        self.terms = self.policy.meta["observation"]["terms"]
        self.description = f"local ONNX {self.policy.path}"

    def __call__(self, obs: np.ndarray) -> np.ndarray | None:
        return self.policy.infer(np.asarray(obs, dtype=np.float32))

    def batched(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.policy.as_torch()  # what play.py evaluates


class GatewaySource(ActionSource):
    """Actions from the policy gateway; a deadline miss or a timeout is no action (hold), as on the arm."""

    def __init__(self, endpoint: str, task: str, obs_size: int, action_size: int, deadline_ms: float = 50.0):
        from roarm_lab.gateway.client import GatewayClient, GatewayError, GatewaySpecError, GatewayTimeout

        self._timeout = GatewayTimeout
        self.deadline_ms = deadline_ms
        self.client = GatewayClient(endpoint, timeout_ms=max(4 * deadline_ms, 500.0), retries=1, name="roarm-sim",
                                    expected={"task": task, "obs_size": obs_size, "action_size": action_size})
        try:
            self.client.connect()
        except (GatewaySpecError, GatewayError, GatewayTimeout) as err:
            self.client.close()
            raise ProtocolError(SimErrorCode.POLICY_FAILED, f"gateway {endpoint}: {err}") from None
        self.terms = self.client.spec["observation"]["terms"]
        self.description = f"gateway {endpoint} ({self.client.spec.get('backend')})"
        self.misses = 0

    def __call__(self, obs: np.ndarray) -> np.ndarray | None:
        try:
            reply = self.client.infer(np.asarray(obs, dtype=np.float32), deadline_ms=self.deadline_ms)
        except self._timeout:
            self.misses += 1
            return None
        if reply["flags"]["deadline_miss"]:
            self.misses += 1
            return None
        return reply["action"]

    def close(self) -> None:
        self.client.close()


def open_source(spec: dict[str, Any], task: str, obs_size: int, action_size: int,
                deadline_ms: float = 50.0) -> ActionSource:
    """``{"export": DIR}`` or ``{"gateway": ENDPOINT}`` (a protocol field; the caller confines paths)."""
    if not isinstance(spec, dict) or len(set(spec) & {"export", "gateway"}) != 1:
        raise ProtocolError(SimErrorCode.BAD_REQUEST, "'policy' must be {'export': <exported/ folder>} or "
                            "{'gateway': <tcp://127.0.0.1:PORT>}")
    if "export" in spec:
        if not isinstance(spec["export"], str):
            raise ProtocolError(SimErrorCode.BAD_REQUEST, "'policy.export' must be a folder path")
        return LocalSource(spec["export"])
    endpoint = spec["gateway"]
    from roarm_lab.gateway.server import is_loopback

    if not isinstance(endpoint, str) or not endpoint.startswith("tcp://") or not is_loopback(endpoint):
        raise ProtocolError(SimErrorCode.BAD_REQUEST, f"'policy.gateway' must be a loopback tcp:// endpoint, got "
                            f"{endpoint!r}")
    return GatewaySource(endpoint, task, obs_size, action_size, deadline_ms)
