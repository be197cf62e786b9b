#!/usr/bin/env python
"""docs/benchmarks.md, regenerated: python scripts/benchmark_report.py (about 8 minutes on 2 cores)"""

import sys

from roarm_lab.benchmark_report import main

if __name__ == "__main__":
    sys.exit(main())
