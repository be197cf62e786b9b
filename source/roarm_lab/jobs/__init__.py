"""Background work of the control plane: jobs (training, evaluation, export, real-arm runs) that outlive the
MCP server, with their state on disk, and the helper services (simulator, gateway) that live with it."""
