"""An exported policy, loaded: the model (ONNX Runtime or TorchScript) with ``infer(obs) -> action``, its spec, and
its action convention. Everything read from the export folder is checked first (``spec.load_spec``) and read with
a size cap from regular files only, never through a symlink (``utils.files``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roarm_lab.policy.convention import ActionConvention, ClientTargets
from roarm_lab.policy.compiled import PARITY_ATOL, compile_mlp, mlp_weights
from roarm_lab.policy.spec import PolicyLoadError, load_spec
from roarm_lab.utils.files import UnsafeFileError, read_bounded

MAX_MODEL_BYTES = 64 << 20
"""The exported MLPs are ~100 kB; anything near this cap is not one of ours."""


class ObservationSizeError(ValueError):
    """An observation that does not fit the export's layout (the message says what was expected)."""


def _onnx_runner(data: bytes, name: str, compiled: bool = False) -> Any:
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

    return _fastest(model, run) if compiled else run


def _fastest(model: Any, reference: Any) -> Any:
    """The compiled MLP kernel where the graph is the exported MLP and it matches ONNX Runtime, else ONNX Runtime.

    The match is checked here, on observations from a fixed seed spanning a few normalizer widths: a kernel that
    computed anything else would never serve (``compiled.PARITY_ATOL``).
    """
    weights = mlp_weights(model)
    kernel = compile_mlp(weights) if weights is not None else None
    if kernel is None:
        return reference
    probe = (weights.mean + weights.divisor * np.random.default_rng(0).normal(0.0, 3.0, (16, weights.mean.size))
             ).astype(np.float32)
    if not np.allclose(kernel(probe), reference(probe), rtol=PARITY_ATOL, atol=PARITY_ATOL):
        return reference
    kernel.inference = "numba-mlp"
    return kernel


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
        with torch.inference_mode():  # a read-only view (the gateway's received bytes) is copied: torch writes
            return model(torch.from_numpy(np.require(obs, requirements="W"))).numpy()

    return run


@dataclass
class LoadedPolicy:
    path: Path
    meta: dict[str, Any]
    backend: str
    _run: Any = field(repr=False, default=None)
    convention: ActionConvention = field(repr=False, default=None)

    @classmethod
    def load(cls, export_dir: str | Path, backend: str = "onnx", compiled: bool = False) -> "LoadedPolicy":
        """Load and check an export; every failure is a ``PolicyLoadError`` naming the file and the fix.

        ``compiled``: the gateway's per-request paths (``policy.compiled``: the numba MLP where the graph allows,
        the numba convention). Other callers (evaluation, the simulator service, the control core) keep ONNX
        Runtime and the numpy rule, and never load numba (0.75 s a process)."""
        if backend not in ("onnx", "torchscript"):
            raise PolicyLoadError(f"unknown inference backend {backend!r}; choose onnx or torchscript")
        meta, folder = load_spec(export_dir)
        name = meta.get("files", {}).get(backend)
        if name is None:
            raise PolicyLoadError(f"{folder}/policy.json names no {backend} file (files.{backend})")
        try:  # no symlink: the model must be the file in this folder, not one planted elsewhere
            data = read_bounded(folder / name, MAX_MODEL_BYTES, f"the {backend} model", follow_symlinks=False)
        except UnsafeFileError as err:
            raise PolicyLoadError(str(err)) from None
        try:
            run = _onnx_runner(data, name, compiled) if backend == "onnx" else _torchscript_runner(data)
        except PolicyLoadError:
            raise
        except Exception as err:  # onnxruntime and torch raise their own types for a bad model
            raise PolicyLoadError(f"{folder / name} cannot be loaded ({type(err).__name__}: {str(err)[:200]})") from None
        policy = cls(path=folder, meta=meta, backend=backend, _run=run, convention=ActionConvention(meta, compiled=compiled))
        try:  # fail at load, not at the first request
            out = np.asarray(run(np.zeros((1, policy.obs_size), dtype=np.float32)))
        except Exception as err:  # noqa: BLE001 - a model that cannot run is a load error
            raise PolicyLoadError(f"{folder / name} does not run on a {policy.obs_size}-value observation "
                                  f"({type(err).__name__})") from None
        if out.size != policy.action_size:
            raise PolicyLoadError(f"{folder / name} outputs {out.size} values; policy.json says output_size "
                                  f"{policy.action_size}")
        return policy

    # ------------------------------------------------------------------ spec
    @property
    def obs_size(self) -> int:
        return int(self.meta["observation"]["size"])

    @property
    def action_size(self) -> int:
        """The model's output: every action term (the arm's first; ``action_terms`` lists them)."""
        return int(self.meta.get("output_size", self.meta["action"]["size"]))

    @property
    def inference(self) -> str:
        """What runs the model: ``numba-mlp`` (the compiled kernel, for ONNX exports of the plain MLP),
        ``onnxruntime`` or ``torchscript``."""
        return getattr(self._run, "inference", "onnxruntime" if self.backend == "onnx" else "torchscript")

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
            "output_size": self.action_size,
            "action_terms": self.meta.get("action_terms", [{"term": act.get("term"), "size": act["size"]}]),
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
                raise ObservationSizeError(f"observation parts: missing {missing}, unknown {extra}")
            parts = []
            for t in terms:
                part = np.asarray(obs[t["name"]], dtype=np.float32).reshape(-1)
                if part.size != t["size"]:
                    raise ObservationSizeError(f"observation part '{t['name']}' has {part.size} values, expected "
                                               f"{t['size']}")
                parts.append(part)
            vec = np.concatenate(parts)
        else:
            vec = np.asarray(obs, dtype=np.float32).reshape(-1)
            if vec.size != self.obs_size:
                raise ObservationSizeError(f"observation has {vec.size} values, expected {self.obs_size}")
        return vec

    def infer(self, obs: np.ndarray) -> np.ndarray:
        """Raw policy action for one flat observation."""
        return np.asarray(self._run(obs.reshape(1, -1)), dtype=np.float32).reshape(-1)

    def infer_batch(self, obs: np.ndarray) -> np.ndarray:
        """Raw actions (N, action size) for a batch of observations (N, obs size)."""
        return np.asarray(self._run(np.ascontiguousarray(obs, dtype=np.float32)), dtype=np.float32)

    def as_torch(self) -> Any:
        """The batched policy on torch tensors, as play.py's evaluation and the simulator call it."""
        import torch

        def act(obs: "torch.Tensor") -> "torch.Tensor":
            return torch.from_numpy(self.infer_batch(obs.detach().cpu().numpy()))

        return act

    # ------------------------------------------------------------------ action conversion
    def measured_joint_pos(self, obs: np.ndarray) -> np.ndarray | None:
        return self.convention.measured_joint_pos(obs)

    def to_targets(self, action: np.ndarray, obs: np.ndarray, state: ClientTargets) -> tuple[np.ndarray, list[bool]]:
        return self.convention.to_targets(action, obs, state)

    def hold_targets(self, obs: np.ndarray, state: ClientTargets, commit: bool = True) -> np.ndarray:
        return self.convention.hold_targets(obs, state, commit)
