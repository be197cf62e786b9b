"""Compiled loops (numba), and an on-disk cache of them that cannot go stale.

``kernel`` is ``numba.njit`` without numba's own cache: numba keys a cached function on its own file only, so a
kernel that calls a helper from another file would keep the old machine code after the helper changed. What is
cached instead are the functions that call kernels from Python: ``compose`` compiles a generated function (a
manager's terms in one call, or ``entry``'s one-kernel trampoline) with numba's cache, under a name that digests
its source, its callees and the text of every file their code comes from (the callees' modules and the fused
forms' package, where the shared helpers live). Change any of them and the digest, the file and the machine code
are new. A fresh process then loads what an earlier one compiled (0.05 s for reach's managers instead of 4 s).

The generated source runs from memory, in a module object registered under the digest's name (numba finds the
module by name when it loads); the ``.py`` file beside this package's code only keys numba's cache and is never
executed. The cache lives beside the code (the same trust as the ``.pyc`` files: whoever can write there can change
the package) and is skipped where that is not writable: the functions then compile in memory in each process.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import re
import sys
import types
from pathlib import Path
from typing import Any, Callable

import numba

kernel = numba.njit(error_model="numpy")
"""A compiled loop, compiled in memory in each process where it is first used (see the module docstring). Float
arithmetic is IEEE's, as torch's: a division by zero gives inf or NaN, where numba's Python model would raise."""

CACHE_DIR = Path(__file__).resolve().parents[1] / "embedded" / "managers" / "_fused_cache"
"""Where the composed functions' source files key numba's cache."""

_SHARED = ("roarm_lab.mdp.fused.common", "roarm_lab.utils.jit")
"""Modules whose helpers kernels of other files call: their text is part of every digest."""


@functools.cache
def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def _origins(callees: list[Any]) -> list[str]:
    """The files the callees' code comes from: their modules' and the shared helpers'."""
    files = {inspect.getsourcefile(c.py_func) or "" for c in callees}
    for name in _SHARED:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            files.add(module.__file__)
    return sorted(files)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GENERATED_NAMES = re.compile(r"(def|return|rows|pi|pf|finish|fused|trampoline|[kacdp][0-9]+)")
_GENERATED_TEXT = re.compile(r"[A-Za-z0-9_()\[\], :\n]*")


def check_generated(source: str, callees: dict[str, Any]) -> None:
    """Refuse anything but the generated shape: ``def`` and calls of positional names (``k0``, ``a3``,
    ``pf[1]``, ``finish``) with no other words, operators, strings or dots, so whatever reached ``compose``,
    the compiled text can do nothing but call the given kernels."""
    words = set(_NAME.findall(source)) | set(callees)
    if not _GENERATED_TEXT.fullmatch(source) or any(not _GENERATED_NAMES.fullmatch(w) for w in words):
        raise ValueError("utils.jit.compose takes generated calls of numbered kernels only; refused: "
                         f"{sorted(w for w in words if not _GENERATED_NAMES.fullmatch(w))[:5]}")


def compose(source: str, callees: dict[str, Any], entry: str) -> Callable[..., Any]:
    """Compile ``source`` (a generated function named ``entry`` calling ``callees`` by their names), cached.
    ``check_generated`` refuses any other text before it is compiled."""
    check_generated(source, {**callees, entry: None})
    refs = [f"{n}={c.py_func.__module__}:{c.py_func.__qualname__}" for n, c in sorted(callees.items())]
    texts = [f"{path}:{_file_digest(path)}" for path in _origins(list(callees.values()))]
    digest = hashlib.sha256("\n".join([source, *refs, *texts, numba.__version__]).encode()).hexdigest()[:32]
    name = f"roarm_lab_fused_{digest}"
    if name in sys.modules:
        return getattr(sys.modules[name], "compiled_" + entry)
    module = types.ModuleType(name)
    module.__dict__.update(callees)
    path = _source_file(digest, source)
    module.__file__ = str(path) if path else "<generated>"
    # only the checked, generated text runs, from memory; nothing read from the cache file is ever compiled
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102
    function = module.__dict__[entry]
    compiled = None
    if path is not None:
        sys.modules[name] = module
        try:
            compiled = numba.njit(cache=True, error_model="numpy")(function)
        except RuntimeError:  # numba found nowhere to cache after all
            compiled = None
    if compiled is None:
        compiled = numba.njit(error_model="numpy")(function)
    setattr(module, "compiled_" + entry, compiled)
    sys.modules[name] = module
    return compiled


def _source_file(digest: str, source: str) -> Path | None:
    """``CACHE_DIR/fused_<digest>.py`` holding ``source`` (written once, atomically); None where not writable."""
    path = CACHE_DIR / f"fused_{digest}.py"
    try:
        if path.is_file() and path.read_text() == source:
            return path
        CACHE_DIR.mkdir(exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
        return path
    except OSError:
        return None


class entry:
    """A kernel called from Python through a cached trampoline, compiled at the first call."""

    def __init__(self, function: Any):
        self._kernel = function
        self._compiled: Callable[..., Any] | None = None
        functools.update_wrapper(self, function.py_func)

    def __call__(self, *args: Any) -> Any:
        if self._compiled is None:
            params = ", ".join(f"p{i}" for i in range(self._kernel.py_func.__code__.co_argcount))
            source = f"def trampoline({params}):\n    return k0({params})\n"
            self._compiled = compose(source, {"k0": self._kernel}, "trampoline")
        return self._compiled(*args)
