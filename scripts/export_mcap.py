#!/usr/bin/env python
"""Rollouts or a real-arm run as one MCAP file of ROS 2 messages: python scripts/export_mcap.py SRC OUT.mcap"""

import sys

from roarm_lab.ros2.cli import export_main

if __name__ == "__main__":
    sys.exit(export_main())
