"""The subset of Isaac Lab's configuration classes that RoArm tasks use, under the same names and fields.

Used when the embedded runtime is selected (see ``roarm_lab.isaaclab_api``). The names and fields are Isaac Lab
3.0's; a test parses Isaac Lab's source and checks that every class and field declared here exists there,
so a task written against these classes is a valid Isaac Lab task.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

from roarm_lab.embedded.configclass import MISSING, configclass
from roarm_lab.embedded import noise as noise_fns


# ----------------------------------------------------------------------------- scene entities
@configclass
class SceneEntityCfg:
    """Names an asset of the scene and, optionally, some of its joints or bodies (resolved to ids)."""

    name: str = MISSING
    joint_names: str | list[str] | None = None
    joint_ids: list[int] | slice = slice(None)
    body_names: str | list[str] | None = None
    body_ids: list[int] | slice = slice(None)
    preserve_order: bool = False

    def resolve(self, scene: Any) -> None:
        """Fill ``joint_ids`` / ``body_ids`` from the names (errors name the asset and the choices)."""
        asset = scene[self.name]
        if self.joint_names is not None:
            ids, _ = asset.find_joints(self.joint_names, preserve_order=self.preserve_order)
            # all joints read as slice(None), as in Isaac Lab; any other ascending run as a slice too, so the
            # terms that index every step with it take a view instead of a gather (terms accept both forms)
            if ids == list(range(ids[0], ids[0] + len(ids))):
                whole = len(ids) == asset.num_joints
                self.joint_ids = slice(None) if whole else slice(ids[0], ids[0] + len(ids))
            else:
                self.joint_ids = ids
        if self.body_names is not None:
            ids, _ = asset.find_bodies(self.body_names, preserve_order=self.preserve_order)
            self.body_ids = ids


# ----------------------------------------------------------------------------- noise
@configclass
class NoiseCfg:
    func: Callable = MISSING
    operation: Literal["add", "scale", "abs"] = "add"


@configclass
class UniformNoiseCfg(NoiseCfg):
    func: Callable = noise_fns.uniform_noise
    n_min: float = -1.0
    n_max: float = 1.0


@configclass
class GaussianNoiseCfg(NoiseCfg):
    func: Callable = noise_fns.gaussian_noise
    mean: float = 0.0
    std: float = 1.0


# ----------------------------------------------------------------------------- manager terms
@configclass
class ManagerTermBaseCfg:
    func: Any = MISSING
    params: dict[str, Any] = dict()


@configclass
class ObservationTermCfg(ManagerTermBaseCfg):
    noise: NoiseCfg | None = None
    clip: tuple[float, float] | None = None
    scale: tuple[float, ...] | float | None = None


@configclass
class ObservationGroupCfg:
    concatenate_terms: bool = True
    enable_corruption: bool = False


@configclass
class RewardTermCfg(ManagerTermBaseCfg):
    weight: float = MISSING


@configclass
class TerminationTermCfg(ManagerTermBaseCfg):
    time_out: bool = False


@configclass
class EventTermCfg(ManagerTermBaseCfg):
    mode: str = MISSING
    """"startup" (once, at construction), "reset" (every reset) or "interval"."""
    interval_range_s: tuple[float, float] | None = None
    is_global_time: bool = False
    min_step_count_between_reset: int = 0


@configclass
class CurriculumTermCfg(ManagerTermBaseCfg):
    pass


@configclass
class ActionTermCfg:
    class_type: type = MISSING
    asset_name: str = MISSING
    clip: dict[str, tuple] | None = None


@configclass
class CommandTermCfg:
    class_type: type = MISSING
    resampling_time_range: tuple[float, float] = MISSING
    debug_vis: bool = False


# ----------------------------------------------------------------------------- assets and scene
@configclass
class UsdFileCfg:
    """Isaac Lab spawns the arm from this USD file; the embedded runtime builds the same arm from the URDF."""

    usd_path: str = MISSING


@configclass
class PreviewSurfaceCfg:
    diffuse_color: tuple[float, float, float] = (0.18, 0.18, 0.18)


@configclass
class UsdPhysicsCollisionCfg:
    collision_enabled: bool | None = None


@configclass
class RigidBodyMaterialBaseCfg:
    """Contact material. MuJoCo has one sliding friction coefficient: the static one is used."""

    static_friction: float = 0.5
    dynamic_friction: float = 0.5
    restitution: float = 0.0


@configclass
class MassPropertiesCfg:
    mass: float | None = None
    density: float | None = None


@configclass
class RigidBodyBaseCfg:
    disable_gravity: bool | None = None


@configclass
class CuboidCfg:
    size: tuple[float, float, float] = MISSING
    collision_props: UsdPhysicsCollisionCfg | None = None
    visual_material: PreviewSurfaceCfg | None = None
    physics_material: RigidBodyMaterialBaseCfg | None = None
    mass_props: MassPropertiesCfg | None = None
    """A free body's mass (or density; with neither, 1000 kg/m^3, MuJoCo's and USD's default)."""
    rigid_props: RigidBodyBaseCfg | None = None
    """Present on a rigid object's spawn (Isaac Lab needs it to make the prim a rigid body)."""


@configclass
class ImplicitActuatorCfg:
    """Isaac Lab 3's implicit (simulator-side) PD drive: the embedded runtime writes these into MuJoCo."""

    joint_names_expr: list[str] = MISSING
    joint_effort_limit: dict[str, float] | float | None = None
    joint_velocity_limit: dict[str, float] | float | None = None
    stiffness: dict[str, float] | float | None = MISSING
    damping: dict[str, float] | float | None = MISSING
    armature: dict[str, float] | float | None = None
    friction: dict[str, float] | float | None = None
    viscous_friction: dict[str, float] | float | None = None


@configclass
class AssetBaseCfg:
    @configclass
    class InitialStateCfg:
        pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
        rot: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
        """Quaternion (x, y, z, w), Isaac Lab 3's order."""

    prim_path: str = MISSING
    spawn: Any = None
    init_state: InitialStateCfg = InitialStateCfg()


@configclass
class ArticulationCfg(AssetBaseCfg):
    @configclass
    class InitialStateCfg(AssetBaseCfg.InitialStateCfg):
        joint_pos: dict[str, float] = {".*": 0.0}
        joint_vel: dict[str, float] = {".*": 0.0}

    init_state: InitialStateCfg = InitialStateCfg()
    actuators: dict[str, ImplicitActuatorCfg] = MISSING
    soft_joint_pos_limit_factor: float = 1.0


@configclass
class RigidObjectCfg(AssetBaseCfg):
    """A free rigid body of the scene (a cube on the table): its state reads as Isaac Lab's ``RigidObject.data``."""

    @configclass
    class InitialStateCfg(AssetBaseCfg.InitialStateCfg):
        lin_vel: tuple[float, float, float] = (0.0, 0.0, 0.0)
        ang_vel: tuple[float, float, float] = (0.0, 0.0, 0.0)

    init_state: InitialStateCfg = InitialStateCfg()


@configclass
class InteractiveSceneCfg:
    num_envs: int = MISSING
    env_spacing: float = MISSING
    replicate_physics: bool = True


@configclass
class MujocoCpuPhysicsCfg:
    """The embedded runtime's engine: MuJoCo's C engine on ``nthread`` native threads (0: one per core)."""

    backend: str = "mujoco-cpu"
    nthread: int = 0
    energy: bool = False
    """Compute each simulation's kinetic and potential energy every step (MuJoCo's energy flag): the physics
    report of recorded rollouts; off in training (it costs a little each step)."""
    cone: str | None = None
    """MuJoCo's friction cone, ``pyramidal`` or ``elliptic``; None keeps the model's (``assets/mjcf.py``)."""
    impratio: float | None = None
    """MuJoCo's ratio of frictional to normal constraint impedance; None keeps the model's (1)."""
    fused_managers: bool = True
    """Run the reward and termination managers as one compiled call each (``mdp.fused``) where every term
    has a fused form; False runs the readable term functions (the same values to float32 rounding)."""


@configclass
class SimulationCfg:
    dt: float = 1.0 / 60.0
    device: str = "cpu"
    render_interval: int = 1
    physics: Any = None
    """The physics backend's settings (Isaac Lab: a ``PhysicsCfg`` or preset; here ``MujocoCpuPhysicsCfg``)."""


@configclass
class ManagerBasedRLEnvCfg:
    sim: SimulationCfg = SimulationCfg()
    seed: int | None = None
    decimation: int = MISSING
    scene: InteractiveSceneCfg = MISSING
    observations: object = MISSING
    actions: object = MISSING
    events: object = None
    is_finite_horizon: bool = False
    episode_length_s: float = MISSING
    rewards: object = MISSING
    terminations: object = MISSING
    curriculum: object | None = None
    commands: object | None = None
    compute_final_obs: bool = False
    """Put the observations of the step that ended an episode, before its reset, in ``extras["final_obs"]``."""

    def play_mode(self):
        """Playback defaults, as Isaac Lab 3's: at most 50 environments, no observation corruption."""
        self.scene.num_envs = min(self.scene.num_envs, 50)
        for name in [f.name for f in dataclasses.fields(self.observations)]:
            group = getattr(self.observations, name)
            if hasattr(group, "enable_corruption"):
                group.enable_corruption = False
