#!/usr/bin/env python
"""Throughput of the embedded runtime: python scripts/benchmark.py [--num_envs 512 2048 4096] [--seconds 5]"""

import sys

from roarm_lab.rl.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
