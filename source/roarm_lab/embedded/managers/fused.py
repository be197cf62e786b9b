"""A manager's terms as one compiled call: their fused forms (``mdp.fused``) composed by numba.

The manager's row buffer (one row per term) is filled by one call that runs each term's kernel in turn, then a
finishing kernel (the reward weights, the termination ORs). The call is a small generated function: its source
names only the kernels by position (``k0``, ``k1``, ...) and the arguments by index (``a0``, ``pi[2]``,
``pf[1]``), never a term's name or a configured string, so nothing a config or an override holds becomes code.
Arrays shared by several terms are passed once. The compiled function is kept per source and kernels in the
process, and on disk by ``utils.jit.compose`` (keyed on everything its code comes from), so a task's managers
compile once per checkout, not once per process.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from roarm_lab.utils.jit import compose, entry, kernel

if TYPE_CHECKING:
    from roarm_lab.mdp.fused import FusedTerm

log = logging.getLogger(__name__)

_COMPILED: dict[tuple, Callable[..., None]] = {}


def view(tensor: torch.Tensor) -> np.ndarray:
    """The numpy view of a persistent torch buffer (shared memory: a kernel reads and writes what the terms do)."""
    if not tensor.is_contiguous():
        raise ValueError("a fused term reads whole contiguous buffers; index them with ids, not views")
    return tensor.detach().numpy()


@kernel
def scale_rows(rows, scales):  # pragma: no cover - compiled
    """Each row times its scale; a zero scale zeroes the row (a disabled term, NaN or not)."""
    for i in range(rows.shape[0]):
        for n in range(rows.shape[1]):
            rows[i, n] = rows[i, n] * scales[i] if scales[i] != 0 else np.float32(0.0)


@entry
@kernel
def close_episode_sums(sums, ids, means):  # pragma: no cover - compiled
    """The reward manager's reset: each row's mean over ``ids`` into ``means``, then those entries zeroed."""
    for i in range(sums.shape[0]):
        total = 0.0
        for r in range(ids.shape[0]):
            total += sums[i, ids[r]]
            sums[i, ids[r]] = 0.0
        means[i] = total / ids.shape[0]


@entry
@kernel
def count_rows(rows, ids, counts):  # pragma: no cover - compiled
    """The termination manager's reset: how many of ``ids`` each row holds true."""
    for i in range(rows.shape[0]):
        counts[i] = 0
        for r in range(ids.shape[0]):
            if rows[i, ids[r]]:
                counts[i] += 1


@kernel
def or_rows(rows, is_time_out, terminated, time_outs):  # pragma: no cover - compiled
    """The termination manager's ORs: time-out rows into ``time_outs``, the others into ``terminated``."""
    for n in range(rows.shape[1]):
        done, timed = False, False
        for i in range(rows.shape[0]):
            if rows[i, n]:
                if is_time_out[i]:
                    timed = True
                else:
                    done = True
        terminated[n] = done
        time_outs[n] = timed


def _memory(array: np.ndarray) -> tuple:
    """What an array is a view of: two views of one buffer are passed once."""
    return array.__array_interface__["data"][0], array.shape, array.strides, array.dtype.str


@kernel
def no_finish(rows):  # pragma: no cover - compiled
    """Observation groups need no finishing pass."""


def _compile(terms: Sequence[FusedTerm], finish: Callable[..., None], finish_args: int, whole: bool,
             arrays: list[np.ndarray]) -> tuple[Callable[..., None], np.ndarray, np.ndarray]:
    """The composed function, its int and float parameters; ``arrays`` receives the distinct arrays in order.
    Each kernel gets its row of the buffer, or with ``whole`` the buffer (observation kernels write columns; event
    kernels get the reset's environment ids). A ``Slot`` argument is given at each call, after the finishing ones."""
    from roarm_lab.mdp.fused.common import Slot

    kernels: list[Callable[..., None]] = []
    ints: list[int] = []
    floats: list[float] = []
    slots: dict[tuple, int] = {}
    draws = 0
    body = []
    for row, term in enumerate(terms):
        if term.kernel not in kernels:
            kernels.append(term.kernel)
        args = ["rows" if whole else f"rows[{row}]"]
        for array in term.arrays:
            if isinstance(array, Slot):
                args.append(f"d{array.index}")
                draws = max(draws, array.index + 1)
                continue
            memory = _memory(array)
            if memory not in slots:
                slots[memory] = len(arrays)
                arrays.append(array)
            args.append(f"a{slots[memory]}")
        args += [f"pi[{len(ints) + i}]" for i in range(len(term.ints))]
        args += [f"pf[{len(floats) + i}]" for i in range(len(term.floats))]
        ints += term.ints
        floats += term.floats
        body.append(f"    k{kernels.index(term.kernel)}({', '.join(args)})")
    extra = [f"c{i}" for i in range(finish_args)]
    body.append(f"    finish({', '.join(['rows', *extra])})")
    params = ", ".join(["rows", "pi", "pf", *extra, *(f"d{i}" for i in range(draws)),
                        *(f"a{i}" for i in range(len(arrays)))])
    source = "def fused(" + params + "):\n" + "\n".join(body) + "\n"
    key = (source, tuple(kernels), finish)
    if key not in _COMPILED:
        _COMPILED[key] = _composed(source, [*kernels, finish])
    return _COMPILED[key], np.asarray(ints, dtype=np.int64), np.asarray(floats, dtype=np.float32)


def _composed(source: str, callees: list[Callable[..., None]]) -> Callable[..., None]:
    """The generated function, compiled, with numba's cache keyed on it and its callees (``utils.jit.compose``)."""
    return compose(source, {**{f"k{i}": c for i, c in enumerate(callees[:-1])}, "finish": callees[-1]}, "fused")


class FusedRows:
    """Fills a buffer with every term's value in one compiled call: a (terms, envs) buffer one row per term, or
    with ``whole`` an observation group's (envs, columns) buffer, each term its columns."""

    def __init__(self, terms: Sequence[FusedTerm], finish: Callable[..., None], finish_args: int,
                 whole: bool = False):
        self._arrays: list[np.ndarray] = []
        self._run, self._ints, self._floats = _compile(terms, finish, finish_args, whole, self._arrays)

    def __call__(self, rows: np.ndarray, *args: Any) -> None:
        """``args``: the finishing kernel's, then the slots' arrays in order."""
        self._run(rows, self._ints, self._floats, *args, *self._arrays)


def bind_terms(env: Any, manager: str, terms: Sequence[tuple[str, Any, Any]]) -> list[FusedTerm] | None:
    """Each (name, cfg, resolved term)'s fused form bound to this environment; None (the readable path) when fusing
    is off (``env.sim.physics.fused_managers``) or a term has no form (named in the log)."""
    if not getattr(env, "fused_managers", False):
        return None
    from roarm_lab.mdp.fused import fused_form  # the terms import the runtime's API, which imports this

    bound = []
    for name, cfg, term in terms:
        form = fused_form(term)
        value = None if form is None else form(env, term, cfg.params)  # a form may decline its parameters
        if value is None:
            log.info("%s term '%s' has no fused form: the %s terms run their readable path", manager, name, manager)
            return None
        bound.append(value)
    return bound
