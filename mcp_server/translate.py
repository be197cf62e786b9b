"""The MCP face's translation besides the tools: the control plane's errors as ``ToolError``, its ranges as
schema bounds.

``guard`` turns the errors a caller can fix into ``ToolError`` (the model sees the message); anything else is
a bug and reaches the model only as "Error executing tool" (the SDK logs the traceback to stderr).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from roarm_lab.control.errors import expected_errors
from roarm_lab.control.rules import Range

F = TypeVar("F", bound=Callable[..., Any])


def guard(fn: F) -> F:
    """Expected failures become ToolError with their message (signature and hints are kept for the schema)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ToolError:
            raise
        except expected_errors() as err:
            raise ToolError(str(err)) from None
    return wrapper  # type: ignore[return-value]


def within(allowed: Range, description: str) -> Any:
    """A schema field bounded by a rule's range (the core checks it again; the schema tells the model)."""
    return Field(ge=allowed.low, le=allowed.high, description=description)
