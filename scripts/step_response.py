#!/usr/bin/env python
"""Single-joint step responses on a runtime, and their overlay: see ``python scripts/step_response.py -h``."""

import sys

from roarm_lab.rl.step_response import main

if __name__ == "__main__":
    sys.exit(main())
