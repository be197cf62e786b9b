"""Drive the RoArm-M3 (or its emulator) with an exported policy: see ``python scripts/run_real.py -h``."""

import sys

from roarm_lab.real.cli import main

if __name__ == "__main__":
    sys.exit(main())
