"""The lab panel (``roarm-panel``): one view of the control plane, shown in a browser on loopback and, through
the Kit extension in ``exts/roarm_lab_panel``, inside Isaac Sim. Both call the same JSON API, which drives the
control core both faces share (``roarm_lab.control.lab.Lab``: jobs, simulator service, gateway, real arm, and every
rule).
See docs/panel.md."""
