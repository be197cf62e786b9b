#!/usr/bin/env python
"""Learning curves of runs against wall-clock time: see ``python scripts/plot_training.py -h``."""

import sys

from roarm_lab.rl.curves import main

if __name__ == "__main__":
    sys.exit(main())
