import sys

from roarm_lab.sim_service.cli import main

sys.exit(main())
