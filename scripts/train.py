#!/usr/bin/env python
"""Train a RoArm task: python scripts/train.py --task RoArm-Reach-v0 [env.x=.. agent.y=..]"""

import sys

from roarm_lab.rl.train import main

if __name__ == "__main__":
    sys.exit(main())
