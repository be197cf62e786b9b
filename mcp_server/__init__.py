"""The MCP server of RoArm Lab (``roarm-mcp``): Copilot Chat's control plane for training, evaluation, the
simulator, the policy gateway and the real arm. A thin client of the rest: every tool returns within seconds;
long work runs as a job. See docs/mcp.md."""
