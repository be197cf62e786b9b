#!/usr/bin/env python
"""Gateway latency and throughput over loopback: python scripts/benchmark_gateway.py --policy logs/.../exported"""

import sys

from roarm_lab.gateway.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
