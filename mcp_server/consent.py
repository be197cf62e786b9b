"""Asking the user before an act that cannot be undone (moving the real arm, deleting a run), with MCP
elicitation. Anything but an explicit yes refuses in plain words: a decline, a cancel, and a client that cannot
ask at all (which gets told so, instead of a protocol error)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp.server.elicitation import AcceptedElicitation
from mcp.server.mcpserver import Context, Elicit
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel


@dataclass(frozen=True)
class NotAsked:
    """The user was not asked: the request was refused before (``reason`` None: the body says why), or the
    client cannot ask."""

    reason: str | None = None


def ask(ctx: Context, question: str, schema: type[BaseModel]) -> Elicit[Any] | NotAsked:
    caps = ctx.client_capabilities
    if caps is None or caps.elicitation is None:
        return NotAsked("this chat client cannot ask you to confirm (it has no MCP elicitation), so nothing was "
                        "done; use a client that can (VS Code's Copilot Chat does), or do it by hand")
    return Elicit(question, schema)


def require_yes(outcome: Any, what: str) -> None:
    """Return only on an explicit yes; else ToolError saying that nothing was done and why."""
    if isinstance(outcome, AcceptedElicitation):
        data = outcome.data
        if isinstance(data, NotAsked):  # never a yes, even if the checks pass by now
            raise ToolError(f"{what}: refused, nothing was done: " + (data.reason or "the user was not asked (the "
                            "request did not pass its checks when it came); call again"))
        if getattr(data, "confirm", False) is True:
            return
        raise ToolError(f"{what}: you answered no, so nothing was done")
    action = getattr(outcome, "action", "cancel")
    raise ToolError(f"{what}: you {'declined' if action == 'decline' else 'cancelled'} the confirmation, so nothing "
                    "was done")
