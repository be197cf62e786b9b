"""``roarm-panel [--port N]``: serve the lab panel at http://127.0.0.1:N/ (default 8780) and print the address.

The first stdout line is ``lab panel ready url=http://127.0.0.1:PORT/?token=...``; logs go to stderr. Every
request needs the token, on loopback too (any local user can reach the port): a new one each start, unless
``--token-file`` chooses it. The panel also writes it to ``LOGS/panel/PORT.token`` (mode 600, removed at exit),
where the Kit extension reads it.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import socket
import stat
import sys
from pathlib import Path

from roarm_lab.panel.server import BACKLOG, log_to_stderr, serve
from roarm_lab.utils.io import atomic_write_text

DEFAULT_PORT = 8780
READY_PREFIX = "lab panel ready"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="roarm-panel", description="RoArm Lab's panel in a browser (docs/panel.md).")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback; any other sends the "
                   "token unencrypted)")
    p.add_argument("--token-file", type=Path, help="a private file (mode 600) holding the token every request must "
                   "carry (default: a new one each start)")
    p.add_argument("--root", type=Path, help="project checkout (default: this package's)")
    p.add_argument("--logs", type=Path, help="logs folder: runs, jobs, simulator, real arm (default: ROOT/logs)")
    p.add_argument("--allow-real-arm", action="store_true", help="let the panel move the real arm after the person "
                   "confirms each run")
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


def write_token_file(folder: Path, port: int, token: str) -> Path:
    """``FOLDER/PORT.token``, written atomically and private (mode 600, in a folder of mode 700 when made here):
    how the Kit extension learns the token of the panel on its port."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return atomic_write_text(folder / f"{port}.token", token + "\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_to_stderr()
    try:
        token = read_token(args.token_file) if args.token_file else secrets.token_urlsafe(32)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not is_loopback_host(args.host):
        print(f"warning: {args.host} is not loopback: plain HTTP, the token and everything else cross the network "
              "unencrypted", file=sys.stderr)
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(BACKLOG)
    except OSError as err:
        print(f"error: cannot listen on {args.host}:{args.port} ({err.strerror or err}); choose another --port",
              file=sys.stderr)
        return 2
    port = sock.getsockname()[1]

    from roarm_lab.control.settings import settings_from
    from roarm_lab.panel.backend import PanelBackend
    from roarm_lab.panel.web import PanelApp

    backend = PanelBackend(settings_from(args))
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    hosts = {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]", shown if ":" not in shown else f"[{shown}]")}
    if args.host in ("0.0.0.0", "::"):
        hosts |= {f"{socket.gethostname()}:{port}"}
    app = PanelApp(backend, hosts, token, cookie=f"roarm-panel-{port}")
    try:
        token_file = write_token_file(backend.settings.paths.panel, port, token)
    except OSError as err:
        print(f"error: cannot write the token file ({err}); check that {backend.settings.paths.logs} is writable",
              file=sys.stderr)
        backend.close()
        return 2
    url = f"http://{shown if ':' not in shown else f'[{shown}]'}:{port}/?token={token}"
    print(f"{READY_PREFIX} url={url}", flush=True)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler it found: make
    # that an exit through ``finally`` so the simulator and gateway this panel started are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve(app.app, sock)
    finally:
        token_file.unlink(missing_ok=True)
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
