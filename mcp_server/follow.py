"""Waiting inside a tool call, the MCP way: progress notifications while a job or a simulator run goes on,
log messages at its milestones, a bounded wait that answers with the state so far, and a cancelled call
that stops what it started (the control plane says what "stop" means)."""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable

import anyio
from mcp.server.mcpserver import Context

from roarm_lab.control.lab import Lab
from roarm_lab.control.models import Progress

POLL_S = (0.25, 2.0)
"""The first poll and the longest gap between polls (a training's iteration takes about a second)."""


async def follow(lab: Lab, ref: str, timeout_s: float, ctx: Context | None,
                 on_cancel: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Poll ``ref`` until it is done or ``timeout_s`` passes; the last status, with ``waited_s`` and, if it is
    still going, what to call next."""
    start = time.monotonic()
    gap, said = POLL_S[0], None
    try:
        while True:
            state: Progress = await anyio.to_thread.run_sync(lab.progress, ref)
            if ctx is not None:
                await ctx.report_progress(state.fraction if state.fraction is not None else 0.0, 1.0, state.message)
                if state.message.split(",")[0] != said:  # the state changed: one log line, not one per poll
                    said = state.message.split(",")[0]
                    with warnings.catch_warnings():  # deprecated in the 2026-07-28 protocol, still read by clients
                        warnings.simplefilter("ignore")  # of earlier ones (VS Code among them)
                        await ctx.info(f"{ref}: {state.message}")
            waited = time.monotonic() - start
            if state.done or waited >= timeout_s:
                out = {**state.result, "waited_s": round(waited, 1), "done": state.done}
                if not state.done:
                    out["next"] = (f"still running: wait_for_job('{ref}') again, or stop it "
                                   f"({'stop_policy' if state.kind == 'sim_policy' else 'stop_training'})")
                return out
            await anyio.sleep(min(gap, max(0.0, timeout_s - waited)))
            gap = min(gap * 2, POLL_S[1])
    except anyio.get_cancelled_exc_class():
        if on_cancel is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(on_cancel)
        raise
