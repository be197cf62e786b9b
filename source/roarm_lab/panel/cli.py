"""``roarm-panel [--port N]``: serve the lab panel at http://127.0.0.1:N/ (default 8780) and print the address.

The first stdout line is ``lab panel ready url=http://127.0.0.1:PORT/`` (with ``#token=...`` when a token is in
force); logs go to stderr. Bound off loopback (``--host``) or with ``--allow-real-arm``, every API request needs
the token (``--token-file`` to choose it; else a new one each start).
"""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import socket
import stat
import sys
from pathlib import Path

DEFAULT_PORT = 8780
READY_PREFIX = "lab panel ready"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roarm-panel", description="RoArm Lab's panel in a browser (docs/panel.md).")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback; any other needs the token)")
    p.add_argument("--token-file", type=Path, help="a private file (mode 600) holding the token API requests must carry")
    p.add_argument("--root", type=Path, help="project checkout (default: this package's)")
    p.add_argument("--logs", type=Path, help="logs folder: runs, jobs, simulator, real arm (default: ROOT/logs)")
    p.add_argument("--allow-real-arm", action="store_true", help="let the panel move the real arm after the person "
                   "confirms each run (requires the token)")
    p.add_argument("--robot", choices=["serial", "http", "emu"], help="real arm connection (default: configs/real.yaml)")
    p.add_argument("--serial-port", dest="serial_port")
    p.add_argument("--arm-http", dest="arm_http")
    p.add_argument("--calibration")
    p.add_argument("--target-time-s", dest="target_time_s", type=float)
    return p


def is_loopback_host(host: str) -> bool:
    from roarm_lab.gateway.protocol import is_loopback

    return is_loopback(f"tcp://{host if ':' not in host else f'[{host}]'}:0")


def read_token(path: Path) -> str:
    """The token from a private file: regular, owner-only, at least 32 characters."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
        raise ValueError(f"{path} must be a regular file readable by its owner only (chmod 600 {path})")
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 32:
        raise ValueError(f"the token in {path} has {len(token)} characters; use at least 32")
    return token


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        token = read_token(args.token_file) if args.token_file else None
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if token is None and (args.allow_real_arm or not is_loopback_host(args.host)):
        token = secrets.token_urlsafe(32)
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(64)
    except OSError as err:
        print(f"error: cannot listen on {args.host}:{args.port} ({err.strerror or err}); choose another --port",
              file=sys.stderr)
        return 2
    port = sock.getsockname()[1]

    from roarm_lab.mcp_server.cli import settings_from
    from roarm_lab.panel.backend import PanelBackend
    from roarm_lab.panel.web import PanelApp

    backend = PanelBackend(settings_from(args))
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    hosts = {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]", shown if ":" not in shown else f"[{shown}]")}
    if args.host in ("0.0.0.0", "::"):
        hosts |= {f"{socket.gethostname()}:{port}"}
    app = PanelApp(backend, hosts, token)
    url = f"http://{shown if ':' not in shown else f'[{shown}]'}:{port}/" + (f"#token={token}" if token else "")
    print(f"{READY_PREFIX} url={url}", flush=True)
    import uvicorn

    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler it found: make
    # that an exit through ``finally`` so the simulator and gateway this panel started are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = uvicorn.Server(uvicorn.Config(app.app, log_level="warning", access_log=False, lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
