"""A loaded policy export: the model (ONNX Runtime or TorchScript), its spec, and the action conversion.

The conversion from the policy's raw action to joint targets follows ``policy.json``'s action block
exactly (the convention the simulator's action term applied); per-client state holds the integrated
target of a relative-action policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roarm_lab.gateway.protocol import ErrorCode, ProtocolError


class PolicyLoadError(ValueError):
    pass


@dataclass
class ClientTargets:
    """The joint targets a client is driving towards (initialised from its first observation)."""

    target: np.ndarray | None = None


class ActionConvention:
    """policy.json's action block as code: raw action to clamped joint targets, the safe hold target.

    The one implementation of the conversion: the gateway serves it, the real-arm bridge calls it.
    """

    def __init__(self, meta: dict[str, Any]):
        act = meta["action"]
        self.size = int(act["size"])
        self.scale = np.asarray(act["scale"], dtype=np.float32)
        self.lower = np.asarray(act["lower"], dtype=np.float32)
        self.upper = np.asarray(act["upper"], dtype=np.float32)
        self.offset = np.asarray(act["offset"], dtype=np.float32)
        self.relative = act.get("mode", "absolute") == "relative"
        self.max_step = act.get("max_step")
        self.joint_names = list(act["joint_names"])
        self.default = np.array([meta["default_joint_pos"][j] for j in self.joint_names], dtype=np.float32)
        term = next((t for t in meta["observation"]["terms"] if t["name"] == "joint_pos"), None)
        self._joint_pos_slice = slice(term["start"], term["stop"]) if term and term["size"] == self.size else None

    def measured_joint_pos(self, obs: np.ndarray) -> np.ndarray | None:
        """The action joints' measured positions, read back from the ``joint_pos`` term (rel. default)."""
        if self._joint_pos_slice is None:
            return None
        return obs[self._joint_pos_slice] + self.default

    def to_targets(self, action: np.ndarray, obs: np.ndarray, state: ClientTargets) -> tuple[np.ndarray, list[bool]]:
        """Joint targets from a raw action (the convention of policy.json), clamped; clipping flagged per joint."""
        if state.target is None:  # as the simulator resets: relative from the measured pose, absolute from offset
            measured = self.measured_joint_pos(obs) if self.relative else None
            state.target = measured if measured is not None else self.offset
        desired = (state.target if self.relative else self.offset) + self.scale * action
        target = np.clip(desired, self.lower, self.upper)
        clipped = [bool(c) for c in (desired < self.lower) | (desired > self.upper)]
        if self.max_step is not None:  # from the previous target, in the box (in the simulator it always is)
            previous = np.clip(state.target, self.lower, self.upper)
            target = previous + np.clip(target - previous, -self.max_step, self.max_step)
        state.target = target.astype(np.float32)
        return state.target, clipped

    def hold_targets(self, obs: np.ndarray, state: ClientTargets) -> np.ndarray:
        """The safe action: keep the current targets (or the measured pose if there are none yet)."""
        if state.target is None:
            measured = self.measured_joint_pos(obs)
            state.target = measured if measured is not None else self.offset.copy()
        return state.target


@dataclass
class LoadedPolicy:
    path: Path
    meta: dict[str, Any]
    backend: str
    _run: Any = field(repr=False, default=None)
    convention: ActionConvention = field(repr=False, default=None)

    @classmethod
    def load(cls, export_dir: str | Path, backend: str = "onnx") -> "LoadedPolicy":
        path = Path(export_dir)
        meta_path = path / "policy.json" if path.is_dir() else path
        if not meta_path.is_file():
            raise PolicyLoadError(f"no policy.json at {meta_path}; pass the exported/ folder written by play.py")
        meta = json.loads(meta_path.read_text())
        if meta.get("schema_version") != 1:
            raise PolicyLoadError(f"{meta_path}: schema_version {meta.get('schema_version')!r} is not supported (1)")
        folder = meta_path.parent
        if backend == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(str(folder / meta["files"]["onnx"]), sess_options=opts,
                                           providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name

            def run(obs: np.ndarray) -> np.ndarray:
                return session.run(None, {name: obs})[0]
        elif backend == "torchscript":
            import torch

            model = torch.jit.load(str(folder / meta["files"]["torchscript"]))

            def run(obs: np.ndarray) -> np.ndarray:
                with torch.inference_mode():
                    return model(torch.from_numpy(obs)).numpy()
        else:
            raise PolicyLoadError(f"unknown inference backend '{backend}'; choose onnx or torchscript")
        policy = cls(path=folder, meta=meta, backend=backend, _run=run, convention=ActionConvention(meta))
        run(np.zeros((1, policy.obs_size), dtype=np.float32))  # fail at load, not at the first request
        return policy

    # ------------------------------------------------------------------ spec
    @property
    def obs_size(self) -> int:
        return int(self.meta["observation"]["size"])

    @property
    def action_size(self) -> int:
        return int(self.meta["action"]["size"])

    @property
    def config_hash(self) -> str:
        return self.meta.get("config_hash", "")

    def spec(self) -> dict[str, Any]:
        """What ``hello`` returns: enough for a client to check it speaks to the policy it expects."""
        obs, act = self.meta["observation"], self.meta["action"]
        return {
            "task": self.meta.get("task"),
            "schema_version": self.meta["schema_version"],
            "config_hash": self.config_hash,
            "observation": {"size": obs["size"], "terms": [{"name": t["name"], "size": t["size"]} for t in obs["terms"]]},
            "action": {"size": act["size"], "names": act["names"], "mode": act.get("mode", "absolute")},
            "control_period_s": self.meta["control_period_s"],
            "backend": self.backend,
        }

    # ------------------------------------------------------------------ observation
    def assemble(self, obs: Any) -> np.ndarray:
        """A flat vector, or named parts assembled in the export's order; sizes checked."""
        if isinstance(obs, dict):
            terms = self.meta["observation"]["terms"]
            missing = [t["name"] for t in terms if t["name"] not in obs]
            extra = sorted(set(obs) - {t["name"] for t in terms})
            if missing or extra:
                raise ProtocolError(ErrorCode.WRONG_SIZE, f"observation parts: missing {missing}, unknown {extra}")
            parts = []
            for t in terms:
                part = np.asarray(obs[t["name"]], dtype=np.float32).reshape(-1)
                if part.size != t["size"]:
                    raise ProtocolError(ErrorCode.WRONG_SIZE, f"observation part '{t['name']}' has {part.size} "
                                        f"values, expected {t['size']}")
                parts.append(part)
            vec = np.concatenate(parts)
        else:
            vec = np.asarray(obs, dtype=np.float32).reshape(-1)
            if vec.size != self.obs_size:
                raise ProtocolError(ErrorCode.WRONG_SIZE, f"observation has {vec.size} values, expected {self.obs_size}")
        return vec

    def infer(self, obs: np.ndarray) -> np.ndarray:
        """Raw policy action for one flat observation."""
        return np.asarray(self._run(obs.reshape(1, -1)), dtype=np.float32).reshape(-1)

    # ------------------------------------------------------------------ action conversion
    def measured_joint_pos(self, obs: np.ndarray) -> np.ndarray | None:
        return self.convention.measured_joint_pos(obs)

    def to_targets(self, action: np.ndarray, obs: np.ndarray, state: ClientTargets) -> tuple[np.ndarray, list[bool]]:
        return self.convention.to_targets(action, obs, state)

    def hold_targets(self, obs: np.ndarray, state: ClientTargets) -> np.ndarray:
        return self.convention.hold_targets(obs, state)
