"""The control plane: the one home of the rules both faces (the MCP server, the lab panel) obey.

``Lab`` (``control.lab``) holds the simulator link, training / evaluation / export / real-arm jobs, the gateway
link and the emergency stop. The rules live beside it, each once: which overrides a face may send and the limits
on every number (``rules``), how many jobs of each kind run at once and which process may be signalled
(``jobs``, ``process``), where runs, checkpoints, exports, progress and job records live and which paths may be
served (``layout``), and the structured progress both faces read (``progress``). A face translates a request,
calls the core and shapes the answer; it holds no rule of its own.

Nothing here imports torch, rsl_rl or MuJoCo at import time: the MCP server must start in a second.
"""
