#!/usr/bin/env python
"""Print what this machine can run (Python, torch, MuJoCo, runtimes, Warp, GPU, MCP SDK, node) and write
the same table to logs/env_diag_<time>.txt."""

import sys

from roarm_lab.envcheck import main

if __name__ == "__main__":
    sys.exit(main())
