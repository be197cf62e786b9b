import sys

from roarm_lab.mcp_server.cli import main

sys.exit(main())
