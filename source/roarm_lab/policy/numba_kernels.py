"""The numba functions of ``policy.compiled`` (imported only where numba is installed; cached beside the code).

Each has its signatures written out, so it compiles (or loads from the cache) when this module is imported, never
at a server's first request, and a call with an array of another kind fails loudly instead of compiling for a
second. The wire's arrays are read-only views of the received bytes, hence the read-only variants.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

_F32 = types.float32
_VEC = types.Array(_F32, 1, "C")
_VEC_RO = types.Array(_F32, 1, "C", readonly=True)
_MAT = types.Array(_F32, 2, "C")
_MAT_RO = types.Array(_F32, 2, "C", readonly=True)
_SIZES = types.Array(types.int64, 1, "C")
_FLAGS = types.Array(types.boolean, 1, "C")


@numba.njit([types.void(obs, _VEC, _VEC, _VEC, _SIZES, types.int64, _F32, _MAT) for obs in (_MAT, _MAT_RO)],
            nogil=True, cache=True)
def mlp_forward(obs, mean, divisor, params, sizes, activation, alpha, out):  # pragma: no cover - compiled
    """``out[r] = MLP((obs[r] - mean) / divisor)``; layer l's (outputs, inputs) weights then biases in ``params``.
    ``activation``: 1 ELU (``alpha``), 2 ReLU, 3 tanh, between layers; none after the last."""
    width = sizes.max()
    scratch = np.empty(2 * width, dtype=np.float32)  # per call: two threads may share a policy
    layers = sizes.size - 1
    for row in range(obs.shape[0]):
        src, dst = 0, width
        for i in range(sizes[0]):
            scratch[i] = (obs[row, i] - mean[i]) / divisor[i]
        offset = 0
        for layer in range(layers):
            n_in, n_out = sizes[layer], sizes[layer + 1]
            bias = offset + n_in * n_out
            last = layer == layers - 1
            for j in range(n_out):
                acc = params[bias + j]
                base = offset + j * n_in
                for i in range(n_in):
                    acc += params[base + i] * scratch[src + i]
                if last:
                    out[row, j] = acc
                    continue
                if activation == 1:
                    if acc < 0.0:
                        acc = alpha * np.expm1(acc)
                elif activation == 2:
                    acc = max(acc, np.float32(0.0))
                elif activation == 3:
                    acc = np.tanh(acc)
                scratch[dst + j] = acc
            offset = bias + n_out
            src, dst = dst, src


@numba.njit([types.boolean(_VEC, _VEC, _VEC, _VEC, types.boolean, _VEC, _VEC, _F32, _VEC, _FLAGS)],
            nogil=True, cache=True)
def action_targets(action, previous, offset, scale, relative, lower, upper, max_step, target_out,
                   clipped_out):  # pragma: no cover - compiled
    """``policy.targets``' rule for one action, in float32 as numpy computes it; False (nothing written that
    counts) on a non-finite desired target. ``max_step`` < 0: no step limit."""
    for j in range(target_out.size):
        base = previous[j] if relative else offset[j]
        desired = base + scale[j] * action[j]
        if not np.isfinite(desired):
            return False
        clipped_out[j] = desired < lower[j] or desired > upper[j]
        target = min(max(desired, lower[j]), upper[j])
        if max_step >= 0.0:
            inside = min(max(previous[j], lower[j]), upper[j])
            target = inside + min(max(target - inside, -max_step), max_step)
        target_out[j] = target
    return True


@numba.njit([types.boolean(a) for a in (_VEC, _VEC_RO)], nogil=True, cache=True)
def all_finite(values):  # pragma: no cover - compiled
    """True if no value of a flat array is NaN or Inf (one pass, no temporary array)."""
    for v in values:
        if not np.isfinite(v):
            return False
    return True
