"""The arm's physics settings, stated once: the embedded MuJoCo model and Isaac Lab's Newton preset read them.

On Isaac Lab, ``RoArmPhysicsCfg`` is a ``PresetCfg`` like Isaac Lab's own reach task: ``newton_mjwarp`` (the
default: MuJoCo Warp through Newton, kitless, CPU or CUDA) and ``physx`` (inside Isaac Sim), chosen with
``presets=physx`` on Isaac Lab's CLI or ``env.sim.physics=physx`` on this project's scripts. On the embedded
runtime it is the MuJoCo CPU engine's config. The solver settings match ``mjcf.py``'s model so a policy moves
the same arm on both (``docs/design.md`` lists what still differs).
"""

from __future__ import annotations

from roarm_lab.assets.mjcf import CONE, INTEGRATOR, LINE_SEARCH_ITERATIONS, SOLVER, SOLVER_ITERATIONS
from roarm_lab.isaaclab_api import ISAACLAB, MJWarpSolverCfg, NewtonCfg, PhysxCfg, PresetCfg, configclass

MAX_CONTACTS_PER_ENV = 32
"""Box contacts of the forearm, wrist, hand and gripper against the table and the base (with margin)."""
MAX_CONSTRAINT_ROWS_PER_ENV = 4 * MAX_CONTACTS_PER_ENV + 12
"""Pyramidal contacts take 4 rows each; joint limits and friction losses 12 more."""

if ISAACLAB:
    @configclass
    class RoArmPhysicsCfg(PresetCfg):
        newton_mjwarp: NewtonCfg = NewtonCfg(
            solver_cfg=MJWarpSolverCfg(
                integrator=INTEGRATOR, cone=CONE, solver=SOLVER, iterations=SOLVER_ITERATIONS,
                ls_iterations=LINE_SEARCH_ITERATIONS, njmax=MAX_CONSTRAINT_ROWS_PER_ENV,
                nconmax=MAX_CONTACTS_PER_ENV, impratio=1.0),
            num_substeps=1,
            use_cuda_graph=True,
        )
        physx: PhysxCfg = PhysxCfg(bounce_threshold_velocity=0.2)
        default: NewtonCfg = newton_mjwarp
else:
    from roarm_lab.embedded.cfg import MujocoCpuPhysicsCfg as RoArmPhysicsCfg  # noqa: F401


GRASP_CONE = "elliptic"
GRASP_IMPRATIO = 10.0
"""Contact settings for tasks that hold an object in the jaws. With MuJoCo's defaults (pyramidal cone, impratio 1)
friction is soft: a cube held by the stalled gripper creeps out of the jaws at about 0.8 cm/s and drops after
7 s (``tests/test_lift_physics.py``); MuJoCo's documentation recommends elliptic cones with a larger impratio
for grasping, and with these it creeps 0.1 cm in 10 s. Reach keeps the defaults: no friction holds anything."""


def grasp_contact_simulation(env_cfg: object) -> None:
    """Hard friction (``GRASP_CONE``, ``GRASP_IMPRATIO``) on the task's physics, on either runtime."""
    physics = env_cfg.sim.physics
    if ISAACLAB:
        for preset in (physics.newton_mjwarp, physics.default):
            preset.solver_cfg.cone, preset.solver_cfg.impratio = GRASP_CONE, GRASP_IMPRATIO
    else:
        physics.cone, physics.impratio = GRASP_CONE, GRASP_IMPRATIO


def servo_rate_simulation(env_cfg: object) -> None:
    """The arm's timing in every task: the policy at 30 Hz, as the real arm is streamed, over 60 Hz physics
    (decimation 2) on the project's solver settings."""
    env_cfg.decimation = 2
    env_cfg.sim.dt = 1.0 / 60.0
    env_cfg.sim.render_interval = env_cfg.decimation
    env_cfg.sim.physics = RoArmPhysicsCfg()
