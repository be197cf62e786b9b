import sys

from roarm_lab.panel.cli import main

sys.exit(main())
