"""The lab panel (``roarm-panel``): one view of the control plane, shown in a browser on loopback and, through
the Kit extension in ``exts/roarm_lab_panel``, inside Isaac Sim. Both call the same JSON API, which drives the
MCP server's control plane (``roarm_lab.mcp_server.lab.Lab``: jobs, simulator service, gateway, real arm).
See docs/panel.md."""
