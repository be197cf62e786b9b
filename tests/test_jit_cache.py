"""utils.jit's cache of composed functions: keyed on every file the code comes from, never run from disk."""

from __future__ import annotations

import importlib
import shutil
import sys

import numpy as np

from roarm_lab.utils import jit


def _kernel_module(tmp_path, name: str, factor: float):
    (tmp_path / f"{name}.py").write_text(
        "from roarm_lab.utils.jit import kernel\n\n@kernel\ndef scale(out, x):\n"
        f"    for i in range(x.shape[0]):\n        out[i] = x[i] * {factor}\n")
    shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)  # same size, same second: a .pyc would pass as fresh
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.invalidate_caches()
        sys.modules.pop(name, None)
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))


def _run(module) -> np.ndarray:
    composed = jit.compose("def fused(a0, a1):\n    k0(a0, a1)\n", {"k0": module.scale}, "fused")
    out = np.zeros(3)
    composed(out, np.array([1.0, 2.0, 3.0]))
    return out


def test_a_change_in_a_kernels_file_is_a_new_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(jit, "CACHE_DIR", tmp_path / "cache")
    jit._file_digest.cache_clear()
    assert list(_run(_kernel_module(tmp_path, "jit_cache_probe", 2.0))) == [2.0, 4.0, 6.0]
    first = sorted(p.name for p in (tmp_path / "cache").glob("fused_*.py"))
    jit._file_digest.cache_clear()
    assert list(_run(_kernel_module(tmp_path, "jit_cache_probe", 3.0))) == [3.0, 6.0, 9.0]  # not the old code
    second = sorted(p.name for p in (tmp_path / "cache").glob("fused_*.py"))
    assert len(first) == 1 and len(second) == 2 and first[0] in second


def test_the_cached_source_file_is_never_what_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(jit, "CACHE_DIR", tmp_path / "cache")
    jit._file_digest.cache_clear()
    module = _kernel_module(tmp_path, "jit_cache_poison", 5.0)
    before = set(sys.modules)
    _run(module)
    (cached,) = (tmp_path / "cache").glob("fused_*.py")
    cached.write_text("raise SystemExit('a poisoned cache file ran')\n")
    for name in set(sys.modules) - before:  # this test's composed module only: as a fresh process would start
        if name.startswith("roarm_lab_fused_"):
            sys.modules.pop(name)
    assert list(_run(module)) == [5.0, 10.0, 15.0]
    assert "SystemExit" not in cached.read_text()  # rewritten from the source in memory


def test_an_unwritable_cache_compiles_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(jit, "CACHE_DIR", blocker / "cache")  # a directory under a file cannot be made
    jit._file_digest.cache_clear()
    assert list(_run(_kernel_module(tmp_path, "jit_cache_nowhere", 4.0))) == [4.0, 8.0, 12.0]


def test_compose_refuses_anything_but_generated_calls_of_numbered_kernels(tmp_path, monkeypatch):
    import pytest

    monkeypatch.setattr(jit, "CACHE_DIR", tmp_path / "cache")
    module = _kernel_module(tmp_path, "jit_cache_refuse", 1.0)
    for source in ("def fused(a0, a1):\n    __import__(a0)\n",         # a word that is no generated name
                   "def fused(a0, a1):\n    k0(a0, a1); k0(a0, 'x')\n",  # a string and a semicolon
                   "def fused(a0, a1):\n    k0(a0.base, a1)\n"):        # an attribute

        with pytest.raises(ValueError, match="numbered kernels only"):
            jit.compose(source, {"k0": module.scale}, "fused")
    with pytest.raises(ValueError, match="numbered kernels only"):
        jit.compose("def fused(a0, a1):\n    system(a0, a1)\n", {"system": module.scale}, "fused")
    assert not (tmp_path / "cache").exists()  # refused before anything was written
