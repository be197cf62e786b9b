"""Fused forms of the manager terms: each term's arithmetic as a numba loop over the buffers the term reads.

The readable term functions (``mdp.rewards``, ``terminations``, ``observations``, reset ``events``) stay the source
of truth; each form here restates one of them over numpy views of the buffers that function reads, and
``tests/test_fused_managers.py`` holds every form to its function term by term, on reach's and lift's states, so a
form that drifts fails there. The embedded runtime's managers (``embedded/managers/fused.py``) compose a task's
forms into one compiled call per manager: the managers' cost is some 60 small torch operations a step, each a few
microseconds of dispatch for a few hundred floats of work, and one call does the same work in one dispatch.

A form is ``bind(env, term, params) -> FusedTerm``: the kernel and what it reads. The kernels write one row
(``out[n]`` for environment ``n``: float32 rewards, bool terminations) or an observation term's columns, in torch's
float32 arithmetic (float32 constants, the same order of operations), so the two paths agree to float32 rounding.
A term without a form (a user's own function) keeps the readable path for its whole manager.

The kernels are cached by numba beside these files, as ``policy.numba_kernels`` is (the same trust as the code).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from roarm_lab.mdp.fused import events, observations, rewards, terminations
from roarm_lab.mdp.fused.common import FusedTerm, Slot


FUSED_FORMS: dict[Any, Callable[[Any, Any, dict], Any]] = {**rewards.FORMS, **terminations.FORMS, **observations.FORMS,
                                                     **events.FORMS}
"""The readable term (a function, or a term class) -> its fused form's binder."""


def fused_form(term: Any) -> Callable[[Any, Any, dict], Any] | None:
    """The binder of a resolved term (a function, or an instance of a term class); None where it has none.

    A task's own term names its form in its code (``fused_form = "roarm_lab.tasks.<task>.fused:<binder>"``, a class
    or function attribute), imported here, by the embedded runtime's managers only, so the task's module needs no
    numba where Isaac Lab runs it. Only references into the package are followed."""
    found = FUSED_FORMS.get(term) or FUSED_FORMS.get(type(term))
    if found is not None:
        return found
    reference = getattr(term, "fused_form", None)
    if not isinstance(reference, str) or not reference.startswith("roarm_lab.") or ":" not in reference:
        return None
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name, None)


__all__ = ["FUSED_FORMS", "FusedTerm", "Slot", "fused_form"]
