"""What every manager shares: reading its terms from a config class and resolving their parameters."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from roarm_lab.embedded.cfg import SceneEntityCfg


class ManagerTermBase:
    """A stateful term (a class instead of a function), as in Isaac Lab: built once, reset per episode."""

    def __init__(self, cfg: Any, env: Any):
        self.cfg = cfg
        self._env = env

    @property
    def num_envs(self) -> int:
        return self._env.num_envs

    @property
    def device(self) -> str:
        return self._env.device

    def reset(self, env_ids: Any = None) -> None:
        pass


def iter_terms(cfg: Any) -> list[tuple[str, Any]]:
    """(name, term cfg) pairs of a config class, in declaration order; ``None`` terms are disabled."""
    if cfg is None:
        return []
    items = [(f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg)] if dataclasses.is_dataclass(cfg) \
        else list(vars(cfg).items())
    return [(name, term) for name, term in items if term is not None]


def resolve_term(name: str, term_cfg: Any, env: Any, manager: str, leading: int = 1) -> Any:
    """Resolve ``SceneEntityCfg`` params and instantiate class-based terms; check the params fit the function.

    ``leading`` is the number of positional arguments the manager passes itself (``env``; events and
    curricula also pass ``env_ids``).
    """
    func = term_cfg.func
    for value in term_cfg.params.values():
        if isinstance(value, SceneEntityCfg):
            value.resolve(env.scene)
    if inspect.isclass(func):
        if not issubclass(func, ManagerTermBase):
            raise TypeError(f"{manager} term '{name}': class {func.__name__} must derive from ManagerTermBase")
        func = func(term_cfg, env)
        target = func.__call__
    else:
        target = func
    sig = inspect.signature(target)
    accepted = list(sig.parameters)[leading:]
    has_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    unknown = [k for k in term_cfg.params if k not in accepted]
    if unknown and not has_kwargs:
        raise ValueError(f"{manager} term '{name}': {getattr(target, '__qualname__', target)} has no parameter(s) "
                         f"{unknown}; it accepts {accepted}")
    required = [p.name for p in list(sig.parameters.values())[leading:]
                if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
    missing = [k for k in required if k not in term_cfg.params]
    if missing:
        raise ValueError(f"{manager} term '{name}': missing parameter(s) {missing} for "
                         f"{getattr(target, '__qualname__', target)}")
    return func
