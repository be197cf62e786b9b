"""``scripts/calibrate_real.py``: the guided calibration. Torque off, move the arm by hand to each named
pose, press Enter; the joint offsets (pose - reading) are written to a per-arm YAML."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

import numpy as np

from roarm_lab.real.calibration import MAX_OFFSET_RAD, Calibration, measure_offsets
from roarm_lab.real.driver import DriverError, RoArmDriver
from roarm_lab.real.plausibility import BOX_MARGIN_RAD, FeedbackLimits
from roarm_lab.real.protocol import firmware_range


def by_hand_limits() -> FeedbackLimits:
    """What a limp arm moved by hand can read, uncalibrated: anywhere the firmware could command it, give or take
    the largest offset; a hand moves it as fast as it likes ('observe' is outside the safe box)."""
    return FeedbackLimits(*firmware_range(), speed_rad_s=None, margin_rad=MAX_OFFSET_RAD + BOX_MARGIN_RAD)


def mean_reading(driver: RoArmDriver, seconds: float = 0.5) -> np.ndarray:
    """Average the reported joints over ``seconds`` (raw readings: no calibration applied)."""
    frames, newest, end = [], -1.0, time.monotonic() + seconds
    while time.monotonic() < end or not frames:
        fb = driver.wait_feedback(newer_than=newest, timeout=1.0)
        if fb is None:
            raise driver.error or DriverError("no feedback while recording the pose")
        newest = fb.received
        frames.append(fb.q)
    return np.mean(frames, axis=0)


def calibrate(driver: RoArmDriver, ask: Callable[[str], None], out: str) -> Calibration:
    if np.any(driver.calibration.offsets):
        raise ValueError("calibrate with an uncalibrated driver (raw readings)")
    driver.torque(False)
    if not driver.flush():
        raise DriverError("could not switch the torque off (is the arm connected?)")
    try:
        cal = measure_offsets(lambda: mean_reading(driver), ask)
    finally:
        driver.torque(True)  # hold wherever the person left it
    cal.save(out)
    return cal


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", help="serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--http", help="the arm's address, e.g. 192.168.4.1")
    p.add_argument("--out", required=True, help="calibration YAML to write, e.g. calib/my_arm.yaml")
    args = p.parse_args(argv)
    if bool(args.port) == bool(args.http):
        p.error("give exactly one of --port or --http")
    try:
        limits = by_hand_limits()
        driver = (RoArmDriver.serial(args.port, limits=limits) if args.port else
                  RoArmDriver.http(args.http, limits=limits)).start()
    except DriverError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        print("torque goes OFF: hold the arm before you press Enter at the first prompt")
        cal = calibrate(driver, lambda msg: input(msg + " "), args.out)
    except (DriverError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        driver.close(hold=False)
    print(f"offsets (rad): {np.round(cal.offsets, 4).tolist()} -> {args.out}")
    return 0
