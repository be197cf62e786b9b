#!/usr/bin/env python
"""Sweep a task's settings on Ray Tune: python scripts/sweep.py --task RoArm-Reach-v0 [--num-samples 16] (docs/scaling.md)."""

import sys

from roarm_lab.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
