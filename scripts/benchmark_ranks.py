#!/usr/bin/env python
"""2 ranks under torchrun against 1 process, same total envs: python scripts/benchmark_ranks.py --task RoArm-Reach-v0"""

import sys

from roarm_lab.rl.rank_benchmark import main

if __name__ == "__main__":
    sys.exit(main())
