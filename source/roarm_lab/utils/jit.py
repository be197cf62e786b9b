"""``compiled``: numba's ``njit`` with its on-disk cache where one can be written, and without it where not.

numba keeps compiled machine code beside the source (``__pycache__``, the same trust as the ``.pyc`` files) or in
the user's cache directory, and refuses a cached function where neither is writable (a read-only install, no
home). Then the kernels compile in memory in each process instead (a second or two), rather than the import
failing.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numba

log = logging.getLogger(__name__)


def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``numba.njit(cache=True)(fn)``, or ``numba.njit(fn)`` where numba has nowhere to cache it."""
    try:
        return numba.njit(cache=True)(fn)
    except RuntimeError as err:  # "cannot cache function ...: no locator available"
        log.debug("numba cache unavailable for %s (%s): compiling in memory", fn.__qualname__, err)
        return numba.njit(fn)
