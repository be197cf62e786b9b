import sys

from roarm_lab.real.emulator.cli import main

sys.exit(main())
