"""A loaded policy export: the model (ONNX Runtime or TorchScript), its spec, and the action conversion.

The conversion from the policy's raw action to joint targets follows ``policy.json``'s action block
exactly (the convention the simulator's action term applied); per-client state holds the integrated
target of a relative-action policy. Everything read from the export folder is checked first
(``roarm_lab.gateway.meta``) and read with a size cap from regular files only (``files.read_bounded``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roarm_lab.assets.joint_table import JOINTS
from roarm_lab.gateway.files import UnsafeFileError, read_bounded
from roarm_lab.gateway.meta import PolicyLoadError, check_policy_meta, load_policy_meta
from roarm_lab.gateway.protocol import ErrorCode, ProtocolError

__all__ = ["ActionConvention", "ClientTargets", "LoadedPolicy", "NotFiniteError", "PolicyLoadError"]

MAX_MODEL_BYTES = 64 << 20
"""The exported MLPs are ~100 kB; anything near this cap is not one of ours."""
_BOX = {j.name: (j.lower, j.upper) for j in JOINTS}


class NotFiniteError(ProtocolError):
    """The policy's action or the integrated target is NaN or Inf: nothing is committed, the caller holds."""

    def __init__(self, message: str):
        super().__init__(ErrorCode.NOT_FINITE, message)


@dataclass
class ClientTargets:
    """The joint targets a client is driving towards (initialised from its first observation)."""

    target: np.ndarray | None = None


class ActionConvention:
    """policy.json's action block as code: raw action to clamped joint targets, the safe hold target.

    The one implementation of the conversion: the gateway serves it, the real-arm bridge calls it. The limits
    are policy.json's intersected with the joint table's safe box (a file can narrow the box, never widen it).
    """

    def __init__(self, meta: dict[str, Any]):
        check_policy_meta(meta)
        act = meta["action"]
        self.size = int(act["size"])
        self.joint_names = list(act["joint_names"])
        box = np.array([_BOX[j] for j in self.joint_names], dtype=np.float32)
        self.scale = np.asarray(act["scale"], dtype=np.float32)
        self.lower = np.maximum(np.asarray(act["lower"], dtype=np.float32), box[:, 0])
        self.upper = np.minimum(np.asarray(act["upper"], dtype=np.float32), box[:, 1])
        self.offset = np.asarray(act["offset"], dtype=np.float32)
        self.relative = act.get("mode", "absolute") == "relative"
        self.max_step = act.get("max_step")
        self.default = np.array([meta["default_joint_pos"][j] for j in self.joint_names], dtype=np.float32)
        term = next((t for t in meta["observation"]["terms"] if t["name"] == "joint_pos"), None)
        self._joint_pos_slice = slice(term["start"], term["stop"]) if term and term["size"] == self.size else None

    def measured_joint_pos(self, obs: np.ndarray) -> np.ndarray | None:
        """The action joints' measured positions, read back from the ``joint_pos`` term (rel. default)."""
        if self._joint_pos_slice is None:
            return None
        return obs[self._joint_pos_slice] + self.default

    def _start(self, obs: np.ndarray) -> np.ndarray:
        """Where a client without targets starts: relative from the measured pose, absolute from the offset."""
        measured = self.measured_joint_pos(obs) if self.relative else None
        return (measured if measured is not None else self.offset).astype(np.float32)

    def to_targets(self, action: np.ndarray, obs: np.ndarray, state: ClientTargets) -> tuple[np.ndarray, list[bool]]:
        """Joint targets from a raw action (the convention of policy.json), clamped; clipping flagged per joint.

        A non-finite action or target raises ``NotFiniteError`` before ``state`` changes (no poisoned integrator).
        """
        previous = state.target if state.target is not None else self._start(obs)
        desired = (previous if self.relative else self.offset) + self.scale * action
        target = np.clip(desired, self.lower, self.upper)
        clipped = [bool(c) for c in (desired < self.lower) | (desired > self.upper)]
        if self.max_step is not None:  # from the previous target, in the box (in the simulator it always is)
            inside = np.clip(previous, self.lower, self.upper)
            target = inside + np.clip(target - inside, -self.max_step, self.max_step)
        if not (np.isfinite(action).all() and np.isfinite(target).all()):
            raise NotFiniteError("the policy's action or joint target is NaN or Inf for this observation (a value "
                                 "out of range?); nothing was applied: hold the current targets")
        state.target = target.astype(np.float32)
        return state.target, clipped

    def hold_targets(self, obs: np.ndarray, state: ClientTargets, commit: bool = True) -> np.ndarray:
        """The safe action: keep the current targets (or the measured pose, in the box, if there are none yet).

        ``commit=False`` leaves a client without targets without them (the observation is not to be trusted).
        """
        if state.target is not None:
            return state.target
        measured = self.measured_joint_pos(obs)
        start = np.clip(measured if measured is not None else self.offset, self.lower, self.upper).astype(np.float32)
        if not np.isfinite(start).all():
            return np.clip(self.default, self.lower, self.upper)  # never a NaN target; the state stays empty
        if commit:
            state.target = start
        return start


def _onnx_runner(data: bytes, name: str) -> Any:
    import onnx
    import onnxruntime as ort

    try:
        model = onnx.load_model_from_string(data)  # from bytes: external data is never read here
    except Exception as err:  # protobuf raises its own types for a corrupt file
        raise PolicyLoadError(f"{name} is not an ONNX model ({type(err).__name__})") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _onnx_tensors(model.graph)):
        raise PolicyLoadError(f"{name} refers to external tensor data (other files): export the policy again "
                              "with scripts/play.py, which writes a self-contained model")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(obs: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: obs})[0]

    return run


def _onnx_tensors(graph: Any):
    """Every tensor of an ONNX graph: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    yield from (s.values for s in graph.sparse_initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _onnx_tensors(sub)


def _torchscript_runner(data: bytes) -> Any:
    import torch

    model = torch.jit.load(io.BytesIO(data), map_location="cpu")

    def run(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(obs)).numpy()

    return run


@dataclass
class LoadedPolicy:
    path: Path
    meta: dict[str, Any]
    backend: str
    _run: Any = field(repr=False, default=None)
    convention: ActionConvention = field(repr=False, default=None)

    @classmethod
    def load(cls, export_dir: str | Path, backend: str = "onnx") -> "LoadedPolicy":
        """Load and check an export; every failure is a ``PolicyLoadError`` naming the file and the fix."""
        if backend not in ("onnx", "torchscript"):
            raise PolicyLoadError(f"unknown inference backend {backend!r}; choose onnx or torchscript")
        meta, folder = load_policy_meta(export_dir)
        name = meta.get("files", {}).get(backend)
        if name is None:
            raise PolicyLoadError(f"{folder}/policy.json names no {backend} file (files.{backend})")
        try:  # no symlink: the model must be the file in this folder, not one planted elsewhere
            data = read_bounded(folder / name, MAX_MODEL_BYTES, f"the {backend} model", follow_symlinks=False)
        except UnsafeFileError as err:
            raise PolicyLoadError(str(err)) from None
        try:
            run = _onnx_runner(data, name) if backend == "onnx" else _torchscript_runner(data)
        except PolicyLoadError:
            raise
        except Exception as err:  # onnxruntime and torch raise their own types for a bad model
            raise PolicyLoadError(f"{folder / name} cannot be loaded ({type(err).__name__}: {str(err)[:200]})") from None
        policy = cls(path=folder, meta=meta, backend=backend, _run=run, convention=ActionConvention(meta))
        try:  # fail at load, not at the first request
            out = np.asarray(run(np.zeros((1, policy.obs_size), dtype=np.float32)))
        except Exception as err:  # noqa: BLE001 - a model that cannot run is a load error
            raise PolicyLoadError(f"{folder / name} does not run on a {policy.obs_size}-value observation "
                                  f"({type(err).__name__})") from None
        if out.size != policy.action_size:
            raise PolicyLoadError(f"{folder / name} outputs {out.size} values; policy.json says action.size "
                                  f"{policy.action_size}")
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

    def hold_targets(self, obs: np.ndarray, state: ClientTargets, commit: bool = True) -> np.ndarray:
        return self.convention.hold_targets(obs, state, commit)
