"""The MCP face's translation: the control plane's errors as ``ToolError``, its ranges as schema bounds, its
results as one compact JSON text (no output schema, no indented copy: a chat context pays for every character),
and pydantic's argument errors as one sentence that names the field and what it accepts.

``tool`` registers a function as a tool with all of that; anything the core does not expect is a bug and reaches
the model only as "Error executing tool" (the SDK logs the traceback to stderr).
"""

from __future__ import annotations

import base64
import functools
import inspect
import json
from typing import Any, Callable

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from roarm_lab.control.errors import expected_errors
from roarm_lab.control.rules import Range

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
ACT = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
STOP = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)


def compact(value: Any) -> str:
    """One line of JSON, nulls left out of models (what the model reads)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def reply(value: Any) -> CallToolResult:
    """A text answer as it is (a markdown table), anything else as compact JSON."""
    return CallToolResult(content=[TextContent(type="text", text=value if isinstance(value, str) else compact(value))])


def image_reply(png: bytes, value: Any) -> CallToolResult:
    """A PNG the client shows, and what it shows as compact JSON."""
    return CallToolResult(content=[ImageContent(type="image", data=base64.b64encode(png).decode(),
                                                mime_type="image/png"), TextContent(type="text", text=compact(value))])


def _result(value: Any) -> Any:
    return value if isinstance(value, CallToolResult) else reply(value)


def tool(mcp: MCPServer, annotations: ToolAnnotations, name: str | None = None) -> Callable[[Callable], Callable]:
    """Register ``fn`` as a tool: its docstring (dedented) as the description, its result compact, the errors a
    caller can fix as ``ToolError`` with their message."""
    def decorator(fn: Callable) -> Callable:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return _result(await fn(*args, **kwargs))
                except ToolError:
                    raise
                except expected_errors() as err:
                    raise ToolError(str(err)) from None
        else:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return _result(fn(*args, **kwargs))
                except ToolError:
                    raise
                except expected_errors() as err:
                    raise ToolError(str(err)) from None
        mcp.tool(name=name, description=inspect.cleandoc(fn.__doc__ or ""), annotations=annotations,
                 structured_output=False)(wrapper)
        return fn
    return decorator


def within(allowed: Range, description: str, **extra: Any) -> Any:
    """A schema field bounded by a rule's range (the core checks it again; the schema tells the model)."""
    return Field(ge=allowed.low, le=allowed.high, description=description, **extra)


# ---------------------------------------------------------------------- argument errors in one sentence
def argument_error(tool_name: str, schema: dict[str, Any], err: ValidationError) -> str:
    """pydantic's report (kilobytes, with links) as one sentence: the first bad field, what it accepts, what
    came."""
    first = err.errors()[0]
    loc = [str(p) for p in first.get("loc", ())]
    field = loc[0] if loc else "arguments"
    prop = schema.get("properties", {}).get(field, {})
    if first.get("type") == "missing":
        return f"{tool_name}: {field} is required: {accepts(prop)}."
    got = json.dumps(first.get("input"), default=str)
    got = got if len(got) <= 60 else got[:57] + "..."
    where = "".join(f"[{p}]" for p in loc[1:] if p.isdigit())
    return f"{tool_name}: {field} must be {accepts(prop)}, got {got}" + (f" at {field}{where}." if where else ".")


def accepts(prop: dict[str, Any]) -> str:
    """What a JSON schema property accepts, in words."""
    if "enum" in prop:
        return "one of " + ", ".join(json.dumps(v) for v in prop["enum"])
    if "anyOf" in prop:
        kinds = [accepts(p) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(kinds) if kinds else "null"
    kind = prop.get("type")
    if kind in ("integer", "number"):
        word = "a whole number" if kind == "integer" else "a finite number"
        lo, hi = prop.get("minimum"), prop.get("maximum")
        if lo is not None and hi is not None:
            return f"{word} from {_num(lo)} to {_num(hi)}"
        return word + (f" >= {_num(lo)}" if lo is not None else "") + (f" <= {_num(hi)}" if hi is not None else "")
    if kind == "array":
        items = prop.get("items", {})
        plain = {"number": "numbers", "integer": "whole numbers", "string": "strings"}
        what = plain.get(items.get("type")) if set(items) <= {"type"} else None
        what = what or f"items that are each {accepts(items) if items else 'a value'}"
        low, high = prop.get("minItems"), prop.get("maxItems")
        if low is not None and low == high:
            return f"a list of {low} {what}"
        if low is not None and high is not None:
            return f"a list of {low} to {high} {what}"
        return f"a list of {what}"
    if kind == "object":
        return "an object (a map of names to values)"
    return {"boolean": "true or false", "string": "a string"}.get(kind, "a valid value")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
