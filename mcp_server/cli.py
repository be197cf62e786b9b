"""``roarm-mcp``: the MCP server over stdio (VS Code's default), or streamable HTTP on loopback.

stdout is the protocol on stdio: nothing here prints; logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from roarm_lab.control.settings import settings_from


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roarm-mcp", description="RoArm Lab's MCP server (docs/mcp.md).")
    p.add_argument("--http", action="store_true", help="serve streamable HTTP on 127.0.0.1 instead of stdio")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (with --http)")
    p.add_argument("--root", type=Path, help="project checkout (default: this package's)")
    p.add_argument("--logs", type=Path, help="logs folder: runs, jobs, simulator, real-arm logs (default: ROOT/logs)")
    p.add_argument("--allow-real-arm", action="store_true",
                   help="let run_policy_on_real_arm move the arm (each run still asks the user to confirm)")
    p.add_argument("--robot", choices=["serial", "http", "emu"], help="real arm connection (default: configs/real.yaml)")
    p.add_argument("--serial-port", dest="serial_port", help="e.g. /dev/ttyUSB0")
    p.add_argument("--arm-http", dest="arm_http", help="the arm's address for --robot http")
    p.add_argument("--calibration", help="per-arm calibration YAML")
    p.add_argument("--target-time-s", dest="target_time_s", type=float, help="seconds each real-arm target is held")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.http and args.allow_real_arm:
        # over HTTP any local user can connect, and a client of theirs can answer the confirmation itself
        parser.error("--allow-real-arm is only offered over stdio, where the client is the program that started "
                     "the server; drop --http (or --allow-real-arm)")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from roarm_lab.mcp_server.server import build_server

    server = build_server(settings_from(args))
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.port)
    else:
        server.run()
    return 0
