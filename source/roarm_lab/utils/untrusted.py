"""Overrides from an untrusted caller (the model through MCP, a client of the simulator service).

The override parser (``roarm_lab.rl.overrides``) checks that keys exist and values fit; this adds what a remote
caller must not reach: fields that name code (``func``, ``class_type``, ``class_name``: a ``module:attr`` string
there is imported and called), fields that choose where files go or where logs are sent, and anything that
is not a plain ``env.a.b=value`` / ``agent.c=value`` token (an argv item starting with ``-`` would be a flag).
"""

from __future__ import annotations

import re

from roarm_lab.rl.overrides import OverrideError

MAX_OVERRIDES = 32
MAX_CHARS = 300
TOKEN = re.compile(r"^(env|agent)(\.[A-Za-z_][A-Za-z0-9_]*)+=")
CODE_FIELDS = {"func", "class_type", "class_name", "entry_point"}
PLACE_FIELDS = {"agent.experiment_name", "agent.run_name", "agent.logger", "agent.wandb_project",
                "agent.neptune_project", "agent.resume", "agent.load_run", "agent.load_checkpoint"}


def check_overrides(overrides: list[str], prefixes: tuple[str, ...] = ("env", "agent")) -> list[str]:
    """The overrides unchanged if a remote caller may send them; else OverrideError naming the first bad one."""
    if not isinstance(overrides, list) or len(overrides) > MAX_OVERRIDES:
        raise OverrideError(f"overrides must be a list of at most {MAX_OVERRIDES} strings like env.a.b=value")
    for item in overrides:
        if not isinstance(item, str) or len(item) > MAX_CHARS or "\x00" in item or "\n" in item:
            raise OverrideError(f"override {item!r:.60} must be one line of at most {MAX_CHARS} characters")
        if not TOKEN.match(item) or item.split(".", 1)[0] not in prefixes:
            raise OverrideError(f"override {item!r:.60} must look like " + " or ".join(f"{p}.a.b=value" for p in prefixes))
        key = item.split("=", 1)[0]
        if key.rsplit(".", 1)[-1] in CODE_FIELDS:
            raise OverrideError(f"override '{key}' names code ({key.rsplit('.', 1)[-1]}); it cannot be changed from "
                                "here: edit the task's config in the source instead")
        if key in PLACE_FIELDS:
            raise OverrideError(f"override '{key}' decides where runs are written or logged; the control plane sets "
                                "it (use the run_name argument)")
    return list(overrides)
