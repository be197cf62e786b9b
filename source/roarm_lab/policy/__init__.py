"""The policy contract and its consumers' one way in: the spec (``policy.json``), the action convention, the loader.

play.py, the gateway, the real-arm bridge, the simulator service and the MCP tools all use this package;
``gateway/`` and ``real/`` depend on it, not on each other.
"""

from roarm_lab.policy.convention import ActionConvention, ClientTargets, NotFiniteError
from roarm_lab.policy.loader import LoadedPolicy, ObservationSizeError
from roarm_lab.policy.spec import SCHEMA_VERSION, PolicyLoadError, build_spec, check_spec, load_spec, observation_layout

__all__ = ["ActionConvention", "ClientTargets", "LoadedPolicy", "NotFiniteError", "ObservationSizeError",
           "PolicyLoadError", "SCHEMA_VERSION", "build_spec", "check_spec", "load_spec", "observation_layout"]
