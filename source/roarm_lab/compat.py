"""Isaac Lab's configuration classes when Isaac Lab is installed, the embedded runtime's otherwise.

Task and MDP modules import from here, so one task definition serves both runtimes.
"""

from __future__ import annotations

try:  # pragma: no cover - exercised only where Isaac Sim is installed
    from isaaclab.actuators import ImplicitActuatorCfg
    from isaaclab.assets import ArticulationCfg
    from isaaclab.envs import ManagerBasedRLEnvCfg
    from isaaclab.managers import ActionTerm, ActionTermCfg, CommandTerm, CommandTermCfg
    from isaaclab.managers import CurriculumTermCfg, EventTermCfg, ManagerTermBase, ObservationGroupCfg
    from isaaclab.managers import ObservationTermCfg, RewardTermCfg, SceneEntityCfg, TerminationTermCfg
    from isaaclab.scene import InteractiveSceneCfg
    from isaaclab.sim import SimulationCfg
    from isaaclab.sim.spawners.from_files import UrdfFileCfg
    from isaaclab.utils import configclass
    from isaaclab.utils.noise import AdditiveUniformNoiseCfg

    ISAACLAB_AVAILABLE = True
except ImportError:
    from roarm_lab.runtime.cfg import (ActionTermCfg, AdditiveUniformNoiseCfg, ArticulationCfg, CommandTermCfg,
                                       CurriculumTermCfg, EventTermCfg, ImplicitActuatorCfg, InteractiveSceneCfg,
                                       ManagerBasedRLEnvCfg, ObservationGroupCfg, ObservationTermCfg, RewardTermCfg,
                                       SceneEntityCfg, SimulationCfg, TerminationTermCfg, UrdfFileCfg)
    from roarm_lab.runtime.configclass import configclass
    from roarm_lab.runtime.managers import ActionTerm, CommandTerm, ManagerTermBase

    ISAACLAB_AVAILABLE = False

from dataclasses import MISSING  # noqa: E402

__all__ = ["ISAACLAB_AVAILABLE", "MISSING", "configclass", "ActionTerm", "ActionTermCfg", "AdditiveUniformNoiseCfg",
           "ArticulationCfg", "CommandTerm", "CommandTermCfg", "CurriculumTermCfg", "EventTermCfg",
           "ImplicitActuatorCfg", "InteractiveSceneCfg", "ManagerBasedRLEnvCfg", "ManagerTermBase",
           "ObservationGroupCfg", "ObservationTermCfg", "RewardTermCfg", "SceneEntityCfg", "SimulationCfg",
           "TerminationTermCfg", "UrdfFileCfg"]
