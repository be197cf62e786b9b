"""The configuration classes of the selected runtime: Isaac Lab 3's, or the embedded runtime's (same names).

Task, agent and MDP modules import from here, so one task definition serves both runtimes. The runtime is
chosen by ``roarm_lab.runtime_choice`` (``--runtime`` on the scripts). With Isaac Lab selected, every name must
import: a partial import (a class renamed between Isaac Lab releases, a missing extension) is an error that
names what is missing, never a silent switch to the embedded classes.
"""

from __future__ import annotations

from dataclasses import MISSING

from roarm_lab.runtime_choice import SETUP_ISAACLAB, RuntimeUnavailable, selected_runtime

RUNTIME = selected_runtime()

if RUNTIME == "isaaclab":
    try:
        from isaaclab.actuators import ImplicitActuatorCfg
        from isaaclab.assets import ArticulationCfg, AssetBaseCfg, RigidObjectCfg
        from isaaclab.envs import ManagerBasedRLEnvCfg
        from isaaclab.managers import (ActionTerm, ActionTermCfg, CommandTerm, CommandTermCfg, CurriculumTermCfg,
                                       EventTermCfg, ManagerTermBase, ObservationGroupCfg, ObservationTermCfg,
                                       RewardTermCfg, SceneEntityCfg, TerminationTermCfg)
        from isaaclab.scene import InteractiveSceneCfg
        from isaaclab.sim import (CuboidCfg, MassPropertiesCfg, PreviewSurfaceCfg, RigidBodyBaseCfg, UsdFileCfg,
                                  UsdPhysicsCollisionCfg)
        from isaaclab.sim.spawners.materials import RigidBodyMaterialBaseCfg
        from isaaclab.utils import configclass
        from isaaclab.utils.noise import UniformNoiseCfg
        from isaaclab_newton.physics import MJWarpSolverCfg, NewtonCfg
        from isaaclab_physx.physics import PhysxCfg
        from isaaclab_rl.rsl_rl import RslRlMLPModelCfg, RslRlOnPolicyRunnerCfg, RslRlPpoAlgorithmCfg
        from isaaclab_tasks.utils import PresetCfg
    except ImportError as err:
        raise RuntimeUnavailable(
            f"Isaac Lab is selected but part of it does not import: {err}. RoArm Lab needs Isaac Lab 3.0 with "
            f"isaaclab_newton, isaaclab_physx, isaaclab_rl and isaaclab_tasks; rebuild the environment with "
            f"{SETUP_ISAACLAB}, or run with --runtime embedded") from err
    ENTRY_POINT = "isaaclab.envs:ManagerBasedRLEnv"
else:
    from roarm_lab.embedded.rsl_rl_cfg import RslRlMLPModelCfg, RslRlOnPolicyRunnerCfg, RslRlPpoAlgorithmCfg
    from roarm_lab.embedded.cfg import (ActionTermCfg, ArticulationCfg, AssetBaseCfg, UsdPhysicsCollisionCfg,
                                       CommandTermCfg, CuboidCfg, CurriculumTermCfg, EventTermCfg,
                                       ImplicitActuatorCfg, InteractiveSceneCfg, ManagerBasedRLEnvCfg,
                                       MassPropertiesCfg, ObservationGroupCfg, ObservationTermCfg, PreviewSurfaceCfg,
                                       RewardTermCfg, RigidBodyBaseCfg, RigidBodyMaterialBaseCfg, RigidObjectCfg,
                                       SceneEntityCfg, TerminationTermCfg, UniformNoiseCfg, UsdFileCfg)
    from roarm_lab.embedded.configclass import configclass
    from roarm_lab.embedded.managers import ActionTerm, CommandTerm, ManagerTermBase

    MJWarpSolverCfg = NewtonCfg = PhysxCfg = PresetCfg = None  # Isaac Lab's physics backends: not here
    ENTRY_POINT = "roarm_lab.embedded.env:ManagerBasedRLEnv"

ISAACLAB = RUNTIME == "isaaclab"

__all__ = ["RUNTIME", "ISAACLAB", "ENTRY_POINT", "MISSING", "configclass", "ActionTerm", "ActionTermCfg",
           "ArticulationCfg", "AssetBaseCfg", "UsdPhysicsCollisionCfg", "CommandTerm", "CommandTermCfg", "CuboidCfg",
           "CurriculumTermCfg", "EventTermCfg", "ImplicitActuatorCfg", "InteractiveSceneCfg", "ManagerBasedRLEnvCfg",
           "ManagerTermBase", "MassPropertiesCfg", "MJWarpSolverCfg", "NewtonCfg", "ObservationGroupCfg", "ObservationTermCfg", "PhysxCfg",
           "PresetCfg", "PreviewSurfaceCfg", "RewardTermCfg", "RslRlMLPModelCfg", "RslRlOnPolicyRunnerCfg",
           "RslRlPpoAlgorithmCfg", "RigidBodyBaseCfg", "RigidBodyMaterialBaseCfg", "RigidObjectCfg", "SceneEntityCfg", "TerminationTermCfg", "UniformNoiseCfg", "UsdFileCfg"]
