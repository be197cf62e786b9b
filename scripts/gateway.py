#!/usr/bin/env python
"""Serve an exported policy: python scripts/gateway.py --policy logs/.../exported [--bind ...] [--deadline-ms ...]"""

import sys

from roarm_lab.gateway.cli import main

if __name__ == "__main__":
    sys.exit(main())
