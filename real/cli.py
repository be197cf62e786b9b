"""``scripts/run_real.py``: drive the arm (or the emulator) with an exported policy. Defaults: configs/real.yaml."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from roarm_lab.assets.joint_table import SERVO
from roarm_lab.utils.files import read_bounded_text
from roarm_lab.real.bridge import Bridge, BridgeConfig, BridgeError, GatewayPolicy, LocalPolicy, load_meta, write_report
from roarm_lab.real import presence
from roarm_lab.real.calibration import Calibration
from roarm_lab.real.driver import DriverError, RoArmDriver
from roarm_lab.rl.checkpoints import create_run_dir
from roarm_lab.rl.run_setup import script_defaults

MAX_TARGETS_BYTES = 1 << 20


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--policy", help="exported/ folder (policy.json + policy.onnx)")
    p.add_argument("--robot", choices=["serial", "http", "emu"])
    p.add_argument("--port", help="serial port, e.g. /dev/ttyUSB0 (implies --robot serial)")
    p.add_argument("--http", help="the arm's address, e.g. 192.168.4.1 (implies --robot http)")
    p.add_argument("--gateway", help="take actions from a policy gateway at this endpoint instead of local ONNX")
    p.add_argument("--backend", choices=["onnx", "torchscript"])
    p.add_argument("--calibration", help="per-arm calibration YAML")
    p.add_argument("--target", nargs=3, type=float, action="append", metavar=("X", "Y", "Z"),
                   help="a target hand position in the base frame (m); repeat for a sequence")
    p.add_argument("--targets", dest="targets_file", help="YAML/JSON list of [x, y, z] (m, base frame)")
    p.add_argument("--random", type=int, help="N random targets from the task's command ranges")
    p.add_argument("--seed", type=int)
    p.add_argument("--target-time-s", dest="target_time_s", type=float)
    p.add_argument("--duration-s", dest="duration_s", type=float, help="run this long (targets repeat)")
    p.add_argument("--rate-hz", dest="rate_hz", type=float)
    p.add_argument("--stale-after-s", dest="stale_after_s", type=float)
    p.add_argument("--max-step-rad", dest="max_step_rad", type=float)
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of sending them")
    p.add_argument("--log-dir", dest="log_dir")
    p.add_argument("--stop-file", dest="stop_file")
    p.add_argument("--emu-arg", dest="emu_args", action="append", default=[],
                   help="pass a flag to the emulator (--robot emu), e.g. --emu-arg=--garbage-rate=0.05")
    return p


MAX_TARGET_M = 1.0
"""The arm reaches about 0.5 m: a larger coordinate is a unit mistake (millimetres) or garbage."""


def check_targets(targets: Any, where: str) -> np.ndarray:
    """An (N, 3) array of finite positions within reach, checked before anything moves; the error names the entry."""
    if not isinstance(targets, (list, tuple)) or not targets:
        raise BridgeError(f"{where}: expected a non-empty list of [x, y, z] in metres")
    for i, t in enumerate(targets):
        ok = isinstance(t, (list, tuple)) and len(t) == 3 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in t)
        if not ok:
            raise BridgeError(f"{where}: target {i} is {t!r:.60}; expected a list of [x, y, z] in metres (finite numbers)")
        if max(abs(v) for v in t) > MAX_TARGET_M:
            raise BridgeError(f"{where}: target {i} {list(t)} is beyond {MAX_TARGET_M} m; targets are in metres "
                              "(was it written in millimetres?)")
    return np.array(targets, dtype=float)


def load_targets(opts: dict[str, Any], meta: dict[str, Any]) -> np.ndarray:
    """From the command line, a file, or the task's own (held-out) reachable target bank."""
    if opts.get("target"):
        return check_targets([list(t) for t in opts["target"]], "--target")
    if opts.get("targets_file"):
        import yaml

        path = Path(opts["targets_file"])
        if not path.exists():
            raise BridgeError(f"no targets file at {path}")
        try:
            doc = yaml.safe_load(read_bounded_text(path, MAX_TARGETS_BYTES, "targets file"))
        except yaml.YAMLError as err:
            raise BridgeError(f"{path} is not valid YAML or JSON ({str(err).splitlines()[0]})") from None
        return check_targets(doc, str(path))
    if opts.get("random"):
        from roarm_lab.mdp.commands import task_target_bank
        from roarm_lab.registry import load_cfg_from_registry, task_profile

        cmd = getattr(load_cfg_from_registry(meta["task"], "env_cfg_entry_point").commands,
                      task_profile(meta["task"]).command)
        bank = task_target_bank(cmd, 4096, int(opts.get("seed") or 0) + cmd.held_out_seed_offset)
        rng = np.random.default_rng(int(opts.get("seed") or 0))
        return bank[rng.choice(len(bank), size=int(opts["random"]), replace=False)]
    raise BridgeError("no targets: give --target X Y Z (repeatable), --targets FILE or --random N")


def check_numbers(opts: dict[str, Any], given: dict[str, Any]) -> None:
    """The numeric settings, before anything is opened: one line naming the value and the fix."""
    positive = ("rate_hz", "target_time_s", "stale_after_s", "max_step_rad", "duration_s")
    for key in positive:
        value = opts.get(key)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise BridgeError(f"--{key.replace('_', '-')} {value}: must be a positive number")
    random = given.get("random")  # configs/real.yaml's 0 means none; asked for on the command line, 0 is a mistake
    if random is not None and not 1 <= random <= 4096:
        raise BridgeError(f"--random {random}: must be a count of targets in 1..4096")


@contextlib.contextmanager
def open_driver(opts: dict[str, Any], calibration: Calibration):
    """The driver for --robot serial/http/emu (the emulator runs in its own process), not started yet: the bridge
    starts it, so a start that fails (no feedback, implausible feedback) is in the run's summary too."""
    kwargs = dict(calibration=calibration, rate_hz=float(opts["rate_hz"]), dry_run=bool(opts.get("dry_run")))
    robot = opts["robot"]
    if robot == "emu":
        from roarm_lab.real.emulator import EmulatorProcess

        with EmulatorProcess(*opts.get("emu_args", [])) as emu:
            print(f"emulator on {emu.port}", flush=True)  # a parent reading a pipe waits for this line
            driver = RoArmDriver.serial(emu.port, **kwargs)
            try:
                yield driver
            finally:
                driver.close(hold=False)
        return
    driver = (RoArmDriver.http(opts["http"], **kwargs) if robot == "http" else
              RoArmDriver.serial(opts["port"], **kwargs))
    try:
        yield driver
    finally:
        driver.close(hold=False)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None and v is not False and v != []}  # 0 is given
    if "port" in given and "robot" not in given:
        given["robot"] = "serial"
    if "http" in given and "robot" not in given:
        given["robot"] = "http"
    opts = {**script_defaults("real"), **given}
    if not opts.get("policy"):
        parser.error("--policy is required (the exported/ folder written by scripts/play.py)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        check_numbers(opts, given)
        meta = load_meta(opts["policy"])
        targets = load_targets(opts, meta)
        calibration = Calibration.load(opts.get("calibration"))
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        run_dir = Path(opts["log_dir"]) / stamp  # created (exclusively) once the inputs are checked
        cfg = BridgeConfig(target_time_s=float(opts["target_time_s"]), stale_after_s=float(opts["stale_after_s"]),
                           max_step_rad=float(opts.get("max_step_rad") or SERVO.max_step_rad),
                           duration_s=opts.get("duration_s"),
                           log_dir=run_dir, stop_file=Path(opts["stop_file"]) if opts.get("stop_file") else None)
        if cfg.stop_file is not None and cfg.stop_file.exists():
            raise BridgeError(f"the stop file {cfg.stop_file} exists: delete it to run")
        period_ms = 1000.0 * float(meta["control_period_s"])
        policy = (GatewayPolicy(opts["gateway"], meta, deadline_ms=0.5 * period_ms, timeout_ms=0.8 * period_ms)
                  if opts.get("gateway") else LocalPolicy(opts["policy"], opts.get("backend", "onnx")))
        cfg.log_dir = run_dir = create_run_dir(Path(opts["log_dir"]), stamp)  # two runs never share a folder
        try:
            with presence.announced(cfg.stop_file), open_driver(opts, calibration) as driver:
                bridge = Bridge(driver, meta, policy, targets, cfg)
                try:
                    summary = bridge.run()
                finally:
                    write_report(bridge)  # an error's summary too: what was sent, the faults, the error
        finally:
            if isinstance(policy, GatewayPolicy):
                policy.close()
    except (BridgeError, DriverError, FileNotFoundError, ValueError, TimeoutError) as err:  # TimeoutError: gateway
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("steps", "jitter_ms", "targets", "reached", "reached_fraction",
                                              "joint_frames_sent", "max_command_outside_safe_box_rad", "faults",
                                              "stale_steps")}, indent=1))
    print(f"log: {run_dir}/steps.npz, plot: {run_dir}/tracking_error.png, summary: {run_dir}/summary.json")
    return 0
