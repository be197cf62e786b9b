#!/usr/bin/env python
"""Serve one interactive simulator (protocol: docs/sim_service.md): python scripts/sim_service.py --task RoArm-Reach-v0"""

import sys

from roarm_lab.sim_service.cli import main

if __name__ == "__main__":
    sys.exit(main())
