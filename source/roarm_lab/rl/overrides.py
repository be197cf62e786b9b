"""Hydra-style command-line overrides for the env and agent configs (``env.a.b=1 agent.c=x``).

Values are parsed with Hydra's own override grammar (numbers, booleans, lists, ``null``); keys are
checked against the config: a wrong key is an error that names it and lists the valid choices.
``env.rewards.goal=null`` removes a term, as in Isaac Lab.

The person at the keyboard gets all of that. A request from a face (MCP, the panel) passes a ``check`` as well,
which sees every key, its old value and the parsed new one and may refuse it: the control plane's safe subset
(``roarm_lab.control.rules``) lives there, not here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException


class OverrideError(ValueError):
    pass


def _children(node: Any) -> list[str]:
    if dataclasses.is_dataclass(node):
        return [f.name for f in dataclasses.fields(node)]
    if isinstance(node, dict):
        return [str(k) for k in node]
    return []


def _get(node: Any, key: str, path: str) -> Any:
    if isinstance(node, dict):
        if key not in node:
            raise OverrideError(f"unknown key '{path}': valid choices at this level are {_children(node)}")
        return node[key]
    if dataclasses.is_dataclass(node) and key in _children(node):
        return getattr(node, key)
    raise OverrideError(f"unknown key '{path}': valid choices at this level are {_children(node) or '(none: a leaf value)'}")


def _coerce(old: Any, new: Any, path: str) -> Any:
    if new is None or old is None or dataclasses.MISSING is old:
        return new
    if isinstance(old, bool):
        if not isinstance(new, bool):
            raise OverrideError(f"'{path}' expects true/false, got {new!r}")
        return new
    if isinstance(old, float) and isinstance(new, int) and not isinstance(new, bool):
        return float(new)
    if isinstance(old, tuple) and isinstance(new, list):
        return tuple(new)
    if dataclasses.is_dataclass(old) and not isinstance(new, type(None)):
        raise OverrideError(f"'{path}' is a config group; set one of its fields: {_children(old)}")
    if isinstance(old, (int, float)) and not isinstance(new, (int, float)):
        raise OverrideError(f"'{path}' expects a number, got {new!r}")
    return new


Check = Callable[[str, Any, str, Any, Any], Any]
"""``check(key, node, field, old, new) -> value``: the value to set, or OverrideError."""


def apply_overrides(configs: dict[str, Any], overrides: list[str], check: Check | None = None) -> list[str]:
    """Apply ``prefix.path=value`` overrides to ``configs`` (keyed by prefix); returns them normalized."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides=list(overrides))
    except OverrideParseException as err:  # several lines and a link: one line that says how to write one
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OverrideError(f"cannot parse the overrides ({first}); write them as env.a.b=value or agent.c=value "
                            "(Hydra's syntax, lists as [1,2])") from None
    applied = []
    for ov in parsed:
        key = ov.key_or_group
        prefix, _, rest = key.partition(".")
        if prefix not in configs or not rest:
            raise OverrideError(f"override '{ov.input_line}' must start with one of {[p + '.' for p in configs]}")
        parts = rest.split(".")
        node = configs[prefix]
        path = prefix
        for part in parts[:-1]:
            path += "." + part
            node = _get(node, part, path)
        last = parts[-1]
        full = f"{path}.{last}"
        old = _get(node, last, full)
        new = _coerce(old, ov.value(), full) if check is None else check(full, node, last, old, ov.value())
        if isinstance(node, dict):
            node[last] = new
        else:
            setattr(node, last, new)
        applied.append(f"{full}={new!r}")
    return applied
