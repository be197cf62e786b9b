"""Override files: a YAML map of override keys to values (``configs/presets/<name>.yaml``), the form a person keeps
reward weights and randomization ranges in, and the form a sweep writes its best trial in.

    env.rewards.tracking.weight: -3.0
    env.events.action_latency: null            # remove a term
    agent.algorithm.learning_rate: 3.0e-4

Each entry becomes the override token ``key=value`` and goes through the same parser (and, from a face, the same
rules) as one typed on the command line, so a file can do nothing a command line could not. A reward file
(``--reward-config``) may name terms alone: ``tracking: -3.0`` means ``env.rewards.tracking.weight=-3.0``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import yaml

from roarm_lab.rl.overrides import OverrideError

MAX_FILE_BYTES = 64 * 1024
KEY = re.compile(r"^(env|agent)(\.[A-Za-z_][A-Za-z0-9_]*)+$")
TERM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PLAIN = re.compile(r"^[A-Za-z0-9_.+-]+$")


def read_file(path: str | Path, flag: str) -> tuple[dict[str, Any], str, str]:
    """The file's map, its sha256 and its text (what the run keeps); OverrideError naming the file and the
    problem."""
    from roarm_lab.utils.files import UnsafeFileError, read_bounded_text

    try:
        text = read_bounded_text(path, MAX_FILE_BYTES, f"{flag} file")
    except (OSError, UnsafeFileError) as err:
        raise OverrideError(f"{flag} {path}: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise OverrideError(f"{flag} {path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise OverrideError(f"{flag} {path} must be a map of override keys to values, e.g. "
                            "'env.rewards.tracking.weight: -3.0'")
    return data, hashlib.sha256(text.encode()).hexdigest(), text


def preset_overrides(data: dict[str, Any], source: str) -> list[str]:
    """``key=value`` tokens from a preset's map (full keys only)."""
    tokens = []
    for key, value in data.items():
        if not isinstance(key, str) or not KEY.match(key):
            raise OverrideError(f"{source}: key {key!r} must be a config path starting with env. or agent., e.g. "
                                "env.rewards.tracking.weight")
        tokens.append(f"{key}={override_value(value, f'{source}: {key}')}")
    return tokens


def reward_overrides(data: dict[str, Any], source: str) -> list[str]:
    """A reward file: ``term: weight`` entries (or full keys) as tokens."""
    full = {}
    for key, value in data.items():
        if isinstance(key, str) and TERM.match(key):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise OverrideError(f"{source}: the weight of reward term {key!r} must be a number (or null to "
                                    f"remove the term), got {value!r}")
            full[f"env.rewards.{key}" + (".weight" if value is not None else "")] = value
        else:
            full[key] = value
    return preset_overrides(full, source)


def override_value(value: Any, where: str) -> str:
    """A YAML value in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value if PLAIN.match(value) else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v, where) for v in value) + "]"
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if not isinstance(k, str) or not TERM.match(k):
                raise OverrideError(f"{where}: map key {k!r} must be a plain name")
            parts.append(f"{k}:{override_value(v, where)}")
        return "{" + ",".join(parts) + "}"
    raise OverrideError(f"{where}: a value of type {type(value).__name__} cannot be an override")


def load(presets: list[str], reward_configs: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """The tokens of every file given (presets first, then reward files, in order) and a record of each file."""
    tokens: list[str] = []
    record: list[dict[str, str]] = []
    for flag, paths, convert in (("--preset", presets, preset_overrides), ("--reward-config", reward_configs,
                                                                           reward_overrides)):
        for path in paths:
            data, digest, text = read_file(path, flag)
            tokens += convert(data, f"{flag} {path}")
            record.append({"flag": flag, "file": str(path), "sha256": digest, "text": text})
    return tokens, record
