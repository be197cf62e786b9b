"""Compiled forms (numba) of the gateway's per-request numerics: the exported MLP, and the action convention.

**The MLP**: the gateway's inference when the ONNX graph is the plain MLP.

Measured for the reach policy (29 -> 64 -> 64 -> 5, ELU, one observation, the 2-core machine;
``scripts/benchmark_gateway.py --inference-only``): ONNX Runtime 8.1 us a call, the same graph in numpy 17.9 us,
TorchScript 26.4 us, this kernel 5.2 us. For a batch of one the cost of ONNX Runtime is its per-call machinery,
not the arithmetic, so a numba loop over the weights wins.

The weights are read from the ONNX file's initializers (plain arrays: nothing in the file is run), and only a
graph of exactly the exported form is accepted: ``Sub(obs, mean)``, ``Div(., std)``, then ``Gemm`` layers
(``transB=1``, ``alpha = beta = 1``) with ``Elu``, ``Relu`` or ``Tanh`` between them. Anything else, or numba
missing, returns None and ONNX Runtime serves. ``LoadedPolicy`` also compares the two on random observations at
load and keeps ONNX Runtime if they differ (``PARITY_ATOL``).

**The convention** (``targets_kernel``): ``policy.targets``' rule (desired target, the non-finite check, the
clipped flags, the box and the step limit) in one call for one action, instead of a dozen numpy calls. The rule's
source of truth stays ``policy.targets`` (the simulator's action term runs it on torch);
``tests/test_gateway_fast_path.py`` holds this form to it bit for bit, NaN and Inf included.

The kernels' signatures are written out, so they compile (about 2 s) when ``numba_kernels`` is imported, and
numba caches the machine code. Its cache is loaded with pickle, so where it lives matters: by default the package's
``__pycache__``, beside the ``.pyc`` files Python itself runs (the same trust as the code: whoever can write there
can change the package); if that is not writable, numba's per-user cache directory; ``NUMBA_CACHE_DIR`` overrides
both, and, like ``PYTHONPATH``, whoever sets the gateway's environment decides what code it runs. Nothing from an
export or the wire reaches numba but arrays.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

PARITY_ATOL = 1e-4
"""Tolerance against ONNX Runtime at load, absolute and relative, per action value (float32 sums in another order
differ by 1e-6 to 2e-5 on the project's exports)."""

_ACTIVATIONS = {"Elu": 1, "Relu": 2, "Tanh": 3}


@dataclass(frozen=True)
class MlpWeights:
    """The normalizer and the layers of an exported MLP, as float32 arrays."""

    mean: np.ndarray
    divisor: np.ndarray
    weights: tuple[np.ndarray, ...]
    """Each (outputs, inputs), as ``Gemm`` with ``transB=1`` stores it."""
    biases: tuple[np.ndarray, ...]
    activation: int
    alpha: float


def mlp_weights(model: Any) -> MlpWeights | None:
    """The MLP of an ONNX ``ModelProto`` of the exported form, else None (the caller keeps ONNX Runtime)."""
    from onnx import numpy_helper

    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        return None
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = list(graph.node)
    if len(nodes) < 3 or [n.op_type for n in nodes[:2]] != ["Sub", "Div"]:
        return None
    sub, div = nodes[0], nodes[1]
    if sub.input[0] != graph.input[0].name or sub.input[1] not in init or list(div.input) != [sub.output[0], div.input[1]] \
            or div.input[1] not in init:
        return None
    mean, divisor = init[sub.input[1]].reshape(-1), init[div.input[1]].reshape(-1)
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 2 or (dims[1].HasField("dim_value") and dims[1].dim_value != mean.size):
        return None  # the declared input must be the normalizer's width
    weights, biases, kinds, alpha = [], [], set(), 1.0
    previous = div.output[0]
    for node in nodes[2:]:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Gemm":
            if len(node.input) != 3 or node.input[0] != previous or node.input[1] not in init or node.input[2] not in init:
                return None
            if attrs.get("transB") is None or attrs["transB"].i != 1 or "transA" in attrs and attrs["transA"].i != 0:
                return None
            if any(name in attrs and abs(attrs[name].f - 1.0) > 0 for name in ("alpha", "beta")):
                return None
            weights.append(init[node.input[1]])
            biases.append(init[node.input[2]].reshape(-1))
        elif node.op_type in _ACTIVATIONS and len(node.input) == 1 and node.input[0] == previous:
            kinds.add(node.op_type)
            if node.op_type == "Elu":
                alpha = attrs["alpha"].f if "alpha" in attrs else 1.0
        else:
            return None
        previous = node.output[0]
    ops = [n.op_type for n in nodes[2:]]
    layered = ops[0::2] == ["Gemm"] * len(weights) and len(ops) == 2 * len(weights) - 1 and len(kinds) <= 1
    if previous != graph.output[0].name or not weights or not layered:  # Gemm, act, Gemm, ..., act, Gemm
        return None
    sizes = [mean.size] + [w.shape[0] for w in weights]
    if divisor.size != mean.size or any(w.ndim != 2 or w.shape[1] != n_in for w, n_in in zip(weights, sizes)) \
            or any(b.size != w.shape[0] for w, b in zip(weights, biases)):
        return None
    as32 = lambda a: np.array(a, dtype=np.float32, order="C")  # noqa: E731 - an owned copy (the kernel wants writable arrays)
    return MlpWeights(as32(mean), as32(divisor), tuple(as32(w) for w in weights), tuple(as32(b) for b in biases),
                      _ACTIVATIONS[kinds.pop()] if kinds else 0, float(alpha))


def compile_mlp(w: MlpWeights) -> Callable[[np.ndarray], np.ndarray] | None:
    """``run(obs (N, inputs) float32) -> (N, outputs) float32`` as a numba loop; None without numba."""
    kernels = numba_kernels()
    if kernels is None:
        return None
    forward = kernels.mlp_forward
    sizes = np.array([w.mean.size] + [m.shape[0] for m in w.weights], dtype=np.int64)
    params = np.concatenate([np.concatenate([m.reshape(-1), b]) for m, b in zip(w.weights, w.biases)])
    inputs, outputs, alpha = int(sizes[0]), int(sizes[-1]), np.float32(w.alpha)

    def run(obs: np.ndarray) -> np.ndarray:
        if obs.ndim != 2 or obs.shape[1] != inputs:  # the loop reads sizes[0] values per row: never past a row
            raise ValueError(f"the policy takes (N, {inputs}) observations, got shape {tuple(obs.shape)}")
        out = np.empty((obs.shape[0], outputs), dtype=np.float32)
        forward(np.ascontiguousarray(obs, np.float32), w.mean, w.divisor, params, sizes, w.activation, alpha, out)
        return out

    return run


def numpy_mlp(w: MlpWeights) -> Callable[[np.ndarray], np.ndarray]:
    """The same MLP in plain numpy (the benchmark's third candidate; slower than the kernel for one observation)."""
    def run(obs: np.ndarray) -> np.ndarray:
        h = (obs - w.mean) / w.divisor
        for i, (m, b) in enumerate(zip(w.weights, w.biases)):
            h = h @ m.T + b
            if i < len(w.weights) - 1:
                h = np.where(h > 0, h, w.alpha * np.expm1(np.minimum(h, 0))) if w.activation == 1 else \
                    np.maximum(h, 0) if w.activation == 2 else np.tanh(h) if w.activation == 3 else h
        return h

    return run


@functools.cache
def numba_kernels() -> Any:
    """The compiled module (``numba_kernels``), or None where numba is missing or cannot compile or cache here:
    then every caller takes its numpy / ONNX Runtime path, and the reason is logged once."""
    if importlib.util.find_spec("numba") is None:
        return None
    try:
        from roarm_lab.policy import numba_kernels as kernels
    except Exception as err:  # numba raises RuntimeError (no cache locator), ImportError (llvmlite), and others
        log.warning("numba is installed but its kernels are unavailable (%s: %s); using the numpy paths",
                    type(err).__name__, err)
        return None
    return kernels


def targets_kernel() -> Any:
    """``kernel(action, previous, offset, scale, relative, lower, upper, max_step, target_out, clipped_out) -> finite``
    (``numba_kernels.action_targets``), or None without numba."""
    kernels = numba_kernels()
    return None if kernels is None else kernels.action_targets


def finite_check() -> Callable[[np.ndarray], bool] | None:
    """``all_finite(flat float32 array) -> bool`` as a compiled loop, or None without numba (the caller keeps
    ``protocol.numpy_all_finite``)."""
    kernels = numba_kernels()
    return None if kernels is None else kernels.all_finite
