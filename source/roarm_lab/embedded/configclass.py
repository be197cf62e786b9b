"""``configclass``: the embedded runtime's stand-in for ``isaaclab.utils.configclass``.

Same behaviour where the task relies on it: class attributes without annotations become fields,
mutable defaults are deep-copied per instance, ``MISSING`` marks a value a subclass or
``__post_init__`` must fill, and ``to_dict()`` / ``replace()`` exist.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import MISSING, field
from typing import Any

__all__ = ["configclass", "MISSING", "to_dict", "missing_fields"]


def _is_field_value(name: str, value: Any) -> bool:
    if name.startswith("__"):
        return False
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.ismethod(value):
        return False
    return not isinstance(value, (property, classmethod, staticmethod))


def configclass(cls: type | None = None, **kwargs: Any):
    """Turn a class into a dataclass the way Isaac Lab's ``configclass`` does."""

    def wrap(klass: type) -> type:
        annotations = dict(klass.__dict__.get("__annotations__", {}))
        for name, value in list(klass.__dict__.items()):
            if _is_field_value(name, value) and name not in annotations:
                annotations[name] = type(value) if value is not MISSING else Any
        klass.__annotations__ = annotations
        for name in annotations:
            if name in klass.__dict__:
                default = klass.__dict__[name]
            else:
                default = _inherited_default(klass, name)
            if isinstance(default, dataclasses.Field):
                continue
            setattr(klass, name, field(default_factory=_copier(default)))
        klass = dataclasses.dataclass(klass, **kwargs)
        klass.to_dict = to_dict  # type: ignore[attr-defined]
        klass.replace = lambda self, **changes: dataclasses.replace(self, **changes)  # type: ignore[attr-defined]
        klass.copy = lambda self: copy.deepcopy(self)  # type: ignore[attr-defined]
        return klass

    return wrap if cls is None else wrap(cls)


def _inherited_default(klass: type, name: str) -> Any:
    for base in klass.__mro__[1:]:
        fields = getattr(base, "__dataclass_fields__", {})
        if name in fields:
            f = fields[name]
            if f.default_factory is not MISSING:  # type: ignore[misc]
                return f.default_factory()  # type: ignore[misc]
            return f.default
    return MISSING


def _copier(value: Any):
    if value is MISSING or isinstance(value, (int, float, str, bool, type(None))) or callable(value) and not \
            dataclasses.is_dataclass(value):
        return lambda: value
    return lambda: copy.deepcopy(value)


def to_dict(obj: Any) -> Any:
    """A plain, YAML-friendly view of a config (callables become ``module:name`` strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if obj is MISSING:
        return "???"
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return f"{obj.__module__}:{obj.__qualname__}"
    if isinstance(obj, float) and obj != obj:
        return "nan"
    for kind in (bool, int, float, str):  # plain types: Isaac Lab uses str subclasses (ResolvableString)
        if isinstance(obj, kind):
            return kind(obj)
    if obj is None:
        return None
    return repr(obj)


def missing_fields(obj: Any, prefix: str = "") -> list[str]:
    """Dotted names of every field still ``MISSING`` (a config that cannot run yet)."""
    out: list[str] = []
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            name = f"{prefix}{f.name}"
            if value is MISSING:
                out.append(name)
            else:
                out.extend(missing_fields(value, name + "."))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(missing_fields(v, f"{prefix}{k}."))
    return out
