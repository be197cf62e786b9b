#!/usr/bin/env python
"""Export and evaluate: python scripts/play.py --task RoArm-Reach-v0 --checkpoint logs/.../model_XXX.pt"""

import sys

from roarm_lab.rl.play import main

if __name__ == "__main__":
    sys.exit(main())
