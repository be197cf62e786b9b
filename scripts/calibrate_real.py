"""Guided per-arm calibration: python scripts/calibrate_real.py --port /dev/ttyUSB0 --out calib/my_arm.yaml"""

import sys

from roarm_lab.real.calibration_routine import main

if __name__ == "__main__":
    sys.exit(main())
