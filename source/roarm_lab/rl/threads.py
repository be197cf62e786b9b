"""Two cores shared by torch and MuJoCo: torch's OpenMP workers sleep between parallel regions, not spin.

In collection torch runs a small operation (the policy on a batch of observations) and then MuJoCo's batch
threads step the physics on the same cores. libgomp's workers busy-wait after every parallel region by
default, and on a 2-core machine that spinning takes cycles from the MuJoCo threads. With
``OMP_WAIT_POLICY=PASSIVE`` a training iteration took about 10 % less wall time, with bit-identical results
(docs/benchmarks_history.md). libgomp reads the variable once, when torch loads it, so ``roarm_lab.rl`` sets it on
import, before any of its modules imports torch; a value the user has set is kept.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

OMP_WAIT_POLICY = "OMP_WAIT_POLICY"
PREFERRED_POLICY = "PASSIVE"


def prefer_passive_omp_waits(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy or torch is already loaded (then its
    OpenMP runtime has read the variable and a change would only mislead); return the policy set, if any."""
    if OMP_WAIT_POLICY not in environ and "torch" not in sys.modules:
        environ[OMP_WAIT_POLICY] = PREFERRED_POLICY
    return environ.get(OMP_WAIT_POLICY)
