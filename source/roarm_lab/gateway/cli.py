"""``roarm-gateway`` / ``scripts/gateway.py``: serve an exported policy until Ctrl-C (or an allowed shutdown).

``roarm-gateway analyze EVENTS.jsonl [--png OUT]`` (the first argument ``analyze``) summarizes an event log
instead (``analyze.py``); every other command line serves, as it always did.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys

from roarm_lab.gateway.admin import new_admin_token
from roarm_lab.policy import LoadedPolicy, PolicyLoadError
from roarm_lab.gateway.server import GatewayConfig, GatewayServer
from roarm_lab.rl.run_setup import script_defaults


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Serve an exported RoArm policy over ZeroMQ (protocol: docs/gateway.md, "
                                "threat model: docs/security.md).",
                                epilog="roarm-gateway analyze EVENTS.jsonl [--png OUT]: latency over time, deadline "
                                "misses and config-hash drift of a gateway's event log (analyze --help).")
    p.add_argument("--policy", help="exported/ folder (policy.json, policy.onnx, policy.pt)")
    p.add_argument("--backend", choices=["onnx", "torchscript"])
    p.add_argument("--bind")
    p.add_argument("--deadline-ms", dest="deadline_ms", type=float)
    p.add_argument("--reply-margin-ms", dest="reply_margin_ms", type=float,
                   help="answer a late request this long before its deadline (reply transport time)")
    p.add_argument("--admin-token-file", dest="admin_token_file",
                   help="enable admin requests (reload, shutdown) for clients that present this file's token")
    p.add_argument("--new-admin-token", dest="new_admin_token", metavar="FILE",
                   help="write a fresh admin token to FILE (mode 600) and exit")
    p.add_argument("--reload-root", dest="reload_roots", action="append",
                   help="a folder a reload may load exports from (repeatable; default: configs/gateway.yaml)")
    p.add_argument("--allow-shutdown", dest="allow_shutdown", action="store_true", default=None)
    p.add_argument("--curve-secret-key", dest="curve_secret_key", help="server .key_secret file (zmq.auth)")
    p.add_argument("--max-batch", dest="max_batch", type=int,
                   help="requests already waiting run through the policy together, at most this many (1: one by one)")
    p.add_argument("--event-log", dest="event_log")
    p.add_argument("--metrics-port", dest="metrics_port", type=int)
    p.add_argument("--metrics-textfile", dest="metrics_textfile")
    p.add_argument("--debug-inference-delay-ms", dest="debug_inference_delay_ms", type=float,
                   help="add this delay to every inference (to measure the deadline watchdog)")
    return p


def server_config(opts: dict) -> GatewayConfig:
    """The server's settings from the command line and configs/gateway.yaml; what neither sets keeps
    ``GatewayConfig``'s default (the one home of the gateway's defaults)."""
    fields = {f.name for f in dataclasses.fields(GatewayConfig)}
    given = {k: v for k, v in opts.items() if k in fields and v is not None}
    if opts.get("curve_secret_key"):
        given["curve_secret_key_file"] = opts["curve_secret_key"]
    if "reload_roots" in given:
        given["reload_roots"] = tuple(given["reload_roots"])
    return GatewayConfig(**given)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["analyze"]:
        from roarm_lab.gateway.analyze import main as analyze_main

        return analyze_main(argv[1:])
    parser = build_parser()
    defaults = script_defaults("gateway")
    args = parser.parse_args(argv)
    if args.new_admin_token:
        print(f"wrote an admin token to {new_admin_token(args.new_admin_token)} (mode 600); start the gateway with "
              f"--admin-token-file {args.new_admin_token}")
        return 0
    opts = {**defaults, **{k: v for k, v in vars(args).items() if v is not None}}
    if not opts.get("policy"):
        parser.error("--policy is required (an exported/ folder written by scripts/play.py)")
    try:
        policy = LoadedPolicy.load(opts["policy"], opts.get("backend", "onnx"), compiled=True)
        server = GatewayServer(policy, server_config(opts))
    except (PolicyLoadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the metrics port: the only socket opened outside ZeroMQ
        print(f"error: cannot serve metrics on 127.0.0.1:{opts.get('metrics_port')} ({err.strerror}): pass another "
              "--metrics-port", file=sys.stderr)
        return 2
    spec = policy.spec()
    print(f"serving {spec['task']} ({spec['observation']['size']} obs -> {spec['action']['size']} actions, "
          f"{policy.backend}, run by {policy.inference}) on {server.endpoint}; deadline {server.cfg.deadline_ms} ms; admin "
          f"{'on (token file)' if opts.get('admin_token_file') else 'off'}; Ctrl-C to stop", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.request_stop())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    print("gateway stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
