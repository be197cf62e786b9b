"""RoArm Lab's panel as a Kit extension (Isaac Sim). The package imports without omni: the controller and its
HTTP client are plain asyncio; ``extension`` (the omni.ext.IExt Kit loads), ``ui`` (the omni.ui window) and
``stage_service`` (the simulator-service protocol for the open stage) import Kit's modules and are loaded only
inside Kit. See docs/panel.md in the repository."""

from roarm_lab_panel.client import PanelClient, PanelRefused, PanelUnavailable
from roarm_lab_panel.controller import PanelController

__all__ = ["PanelClient", "PanelController", "PanelRefused", "PanelUnavailable"]
