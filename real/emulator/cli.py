"""``roarm-emulator`` / ``python -m roarm_lab.real.emulator``: serve an emulated arm until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Sequence

from roarm_lab.assets.joint_table import JOINTS
from roarm_lab.real.emulator.arm import ArmEmulator
from roarm_lab.real.emulator.config import READY_PREFIX, EmulatorConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m roarm_lab.real.emulator",
                                description="Emulate a RoArm-M3 (firmware v0.84) on a pseudo-terminal and HTTP.")
    d = EmulatorConfig()
    p.add_argument("--link", default=None, help="symlink to create for the serial port (default: a temp path)")
    p.add_argument("--http-port", type=int, default=None, help="serve GET /js on 127.0.0.1:N (0 = any free port)")
    p.add_argument("--latency-s", type=float, default=d.latency_s)
    p.add_argument("--speed-rad-s", type=float, default=d.speed_rad_s)
    p.add_argument("--feedback-hz", type=float, default=d.feedback_hz)
    p.add_argument("--no-flow-feedback", action="store_true", help="start with the feedback stream off")
    p.add_argument("--garbage-rate", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--unpowered-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pull-cable-at", type=float, default=None, metavar="S", help="pull the USB cable S s after start")
    p.add_argument("--pull-cable-for", type=float, default=d.pull_cable_for_s, metavar="S")
    p.add_argument("--calibration-offset", type=float, nargs=len(JOINTS), default=None, metavar="RAD",
                   help="reported = true - offset, URDF radians in JOINTS order")
    p.add_argument("--estop-block-s", type=float, default=d.estop_block_s)
    p.add_argument("--fault-at", type=float, default=None, metavar="S",
                   help="S s after start, feedback reports --fault-joint at --fault-value (a servo reading nonsense)")
    p.add_argument("--fault-joint", default=d.fault_joint, help=f"joint the fault reports (default {d.fault_joint})")
    p.add_argument("--fault-value", type=float, default=d.fault_value_rad, metavar="RAD",
                   help=f"what it reports, URDF radians (default {d.fault_value_rad:g}; inside the box: a jump)")
    p.add_argument("--fault-frames", type=int, default=None, metavar="N", help="only N faulty frames (default: all)")
    p.add_argument("--silent-after-fault", action="store_true",
                   help="after the faulty frames send no feedback at all (commands are still obeyed)")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="exit when this process is gone (EmulatorProcess passes its own pid: no orphaned emulator)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; prints one ``emulator ready serial=... http=...`` line once serving."""
    args = _parser().parse_args(argv)
    cfg = EmulatorConfig(link=args.link, http_port=args.http_port, latency_s=args.latency_s,
                         speed_rad_s=args.speed_rad_s, feedback_hz=args.feedback_hz,
                         flow_feedback=not args.no_flow_feedback, garbage_rate=args.garbage_rate,
                         drop_rate=args.drop_rate, unpowered_rate=args.unpowered_rate, seed=args.seed,
                         pull_cable_at_s=args.pull_cable_at, pull_cable_for_s=args.pull_cable_for,
                         estop_block_s=args.estop_block_s, fault_at_s=args.fault_at, fault_joint=args.fault_joint,
                         fault_value_rad=args.fault_value, fault_frames=args.fault_frames,
                         silent_after_fault=args.silent_after_fault,
                         calibration_offset=tuple(args.calibration_offset or (0.0,) * len(JOINTS)))
    try:
        emulator = ArmEmulator(cfg)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    with emulator as emu:
        print(f"{READY_PREFIX} serial={emu.port} http={emu.http_url or 'none'}", flush=True)
        while not done.wait(0.5):
            if args.parent_pid is not None and os.getppid() != args.parent_pid:
                break  # the parent died (even by SIGKILL, which it cannot pass on): reparented, so stop
    return 0
