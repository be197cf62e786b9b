"""Helpers of the MCP tests: a real ``mcp`` client talking to ``roarm-mcp`` over stdio, as VS Code does."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any, AsyncIterator

from mcp import Client, StdioServerParameters
from mcp.types import ElicitResult

ROOT = Path(__file__).resolve().parents[1]


class ToolFailed(AssertionError):
    """The tool answered with is_error: its text is what the model would read."""


def server_params(logs: Path, *args: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "roarm_lab.mcp_server", "--logs", str(logs), *args],
                                 cwd=str(ROOT))


@contextlib.asynccontextmanager
async def session(logs: Path, *args: str, elicit: Any = None, mode: str = "auto") -> AsyncIterator[Client]:
    async with Client(server_params(logs, *args), mode=mode, elicitation_callback=elicit,
                      read_timeout_seconds=180) as client:
        yield client


def parsed(result: Any) -> Any:
    """A tool's answer as the model reads it: the one compact JSON text (after an image, if there is one)."""
    texts = [c.text for c in result.content if c.type == "text"]
    assert len(texts) == 1 and "\n  " not in texts[0], f"one compact text expected, got {texts}"
    try:
        return json.loads(texts[0])
    except json.JSONDecodeError:
        return texts[0]  # a markdown table


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    """The tool's result; ``ToolFailed`` with its message if it answered with an error."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise ToolFailed(result.content[0].text)
    return parsed(result)


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} was expected to refuse, it returned {result.content}"
    return result.content[0].text


def answer(confirm: bool | None, asked: list[str]):
    """An elicitation callback that records the question and answers yes/no (None: declines)."""
    async def callback(_ctx: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        if confirm is None:
            return ElicitResult(action="decline")
        return ElicitResult(action="accept", content={"confirm": confirm})
    return callback


def install_export(export_dir: Path, logs: Path, run: str = "2026-01-01_00-00-00_fixture") -> Path:
    """Put an exported policy where the server looks for runs (its runs folder)."""
    target = logs / "rsl_rl" / "roarm_reach" / run / "exported"
    shutil.copytree(export_dir, target, dirs_exist_ok=True)
    return target.parent
