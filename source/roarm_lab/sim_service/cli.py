"""``python -m roarm_lab.sim_service`` / ``scripts/sim_service.py``: serve one simulator until stopped.

Prints one line ``sim service ready endpoint=tcp://127.0.0.1:PORT task=... gl=... secret=SOURCE`` on stdout
once it serves (after the environment is built when ``--task`` is given), then logs to stderr only. SOURCE,
the line's last field, says where clients find the secret: ``env:ROARM_SIM_SECRET`` (the starter has it) or
``file:PATH`` (``--secret-file``, or the file a service started by hand writes and removes when it exits).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

READY_PREFIX = "sim service ready"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m roarm_lab.sim_service", description=__doc__.splitlines()[0])
    p.add_argument("--bind", default="tcp://127.0.0.1:5560", help="loopback endpoint; port * picks a free one")
    p.add_argument("--task", help="start this task at launch (else wait for a start request)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--randomize", action="store_true", help="domain randomization on (default: the nominal arm)")
    p.add_argument("--realtime", action="store_true", help="step at the control period in wall-clock time")
    p.add_argument("--viewer", action="store_true", help="open MuJoCo's viewer window (needs a display; leaves "
                   "MUJOCO_GL to the display instead of defaulting it to egl)")
    p.add_argument("--policy-root", action="append", default=[], help="exported policies may be loaded from "
                   "under this folder (repeatable; default: logs/rsl_rl)")
    p.add_argument("--data-dir", default="logs/sim", help="rollouts are written under DIR/rollouts/")
    p.add_argument("--no-shutdown", dest="allow_shutdown", action="store_false",
                   help="refuse shutdown requests (stop with SIGTERM)")
    p.add_argument("--secret-file", help="the secret clients must send: a file of yours, mode 600, of at least 32 "
                   "characters (default: $ROARM_SIM_SECRET from the starter, else a new one written to "
                   "DATA_DIR/sim-service-PID.secret)")
    return p


def main(argv: list[str] | None = None) -> int:
    args, overrides = build_parser().parse_known_args(argv)
    bad = [o for o in overrides if not o.startswith("env.") or "=" not in o]
    if bad:
        print(f"error: unrecognized arguments {bad} (overrides look like env.a.b=value)", file=sys.stderr)
        return 2
    if not args.viewer and not os.environ.get("MUJOCO_GL") and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"  # before anything imports MuJoCo
    from roarm_lab.sim_service.secret import SECRET_ENV, service_secret

    made = Path(args.data_dir) / f"sim-service-{os.getpid()}.secret"
    making = args.secret_file is None and SECRET_ENV not in os.environ
    try:
        secret, source = service_secret(args.secret_file, made)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        return _serve(args, overrides, secret, source)
    finally:
        if making:  # the secret this service made ends with it
            made.unlink(missing_ok=True)


def _serve(args: argparse.Namespace, overrides: list[str], secret: str, source: str) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    from roarm_lab.sim_service.protocol import ProtocolError
    from roarm_lab.sim_service.server import SimServer

    try:
        server = SimServer(args.bind, secret=secret, secret_source=source,
                           policy_roots=[Path(r) for r in args.policy_root or ["logs/rsl_rl"]],
                           data_dir=Path(args.data_dir), allow_shutdown=args.allow_shutdown)
        if args.task:
            server.start(args.task, seed=args.seed, randomize=args.randomize, realtime=args.realtime,
                         overrides=overrides, viewer=args.viewer)
    except (ProtocolError, ValueError, OSError) as err:
        print(f"error: {getattr(err, 'message', err)}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "_running", False))
    logging.getLogger(__name__).info("clients must send the secret (%s)", source)
    print(f"{READY_PREFIX} endpoint={server.endpoint} task={args.task or 'none'} "
          f"gl={os.environ.get('MUJOCO_GL', 'default')} secret={source}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
