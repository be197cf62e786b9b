"""``python -m roarm_lab.ros2 export SRC OUT.mcap``."""

import sys

from roarm_lab.ros2.cli import main

if __name__ == "__main__":
    sys.exit(main())
