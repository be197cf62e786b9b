"""The arm's physics settings, stated once: the embedded MuJoCo model and Isaac Lab's Newton preset read them.

On Isaac Lab, ``RoArmPhysicsCfg`` is a ``PresetCfg`` like Isaac Lab's own reach task: ``newton_mjwarp`` (the
default: MuJoCo Warp through Newton, kitless, CPU or CUDA) and ``physx`` (inside Isaac Sim), chosen with
``presets=physx`` on Isaac Lab's CLI or ``env.sim.physics=physx`` on this project's scripts. On the embedded
runtime it is the MuJoCo CPU engine's config. The solver settings match ``mjcf.py``'s model so a policy moves
the same arm on both (``docs/design.md`` lists what still differs).
"""

from __future__ import annotations

from roarm_lab.assets.joint_table import SERVO
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


POLICY_HZ = 30
"""The rate the real arm is streamed at, and every task's policy rate."""
SERVO_LATENCY_STEPS = round(SERVO.latency_s * POLICY_HZ)
"""The arm's command-to-motion delay in policy steps (0.2 s: 6): the tasks' servo model without randomization. A
nominal evaluation with none was an arm no policy was trained on: lift, trained with 3 to 8 steps, closed its jaws
early and scored 0.22 where 3, 5 or 8 steps gave 0.92 to 0.96 (docs/tasks.md)."""


GRASP_CONE = "elliptic"
GRASP_IMPRATIO = 10.0
"""Contact settings for tasks that hold an object in the jaws. With MuJoCo's defaults (pyramidal cone, impratio 1)
friction is soft: a cube held by the stalled gripper creeps out of the jaws (at 60 Hz about 0.8 cm/s, dropping
after 7 s; at ``GRASP_PHYSICS_HZ`` 0.8 cm in a 5 s episode, ``tests/test_lift_physics.py``). MuJoCo's documentation
recommends elliptic cones with a larger impratio for grasping; with these it creeps 0.05 cm in 5 s. Reach keeps the
defaults: no friction holds anything."""
GRASP_PHYSICS_HZ = 240
"""The physics rate of tasks that push objects around (decimation 8 under the 30 Hz policy). MuJoCo's soft contacts
scale with the effective mass of what they hold apart, and at 60 Hz a 40 g cube pressed against the table by a
jaw sinks 4 to 8 mm into it within one step and is shot out at up to 39 m/s: under exploration noise two of
three lift training episodes ended with the cube off the table, and half of 64 cubes shaken by random actions
from the open-jaw start flew faster than 1 m/s. At 240 Hz, 6 of 64 (``tests/test_lift_physics.py``; docs/tasks.md,
"Physics rate"). A lift step costs 2.3 to 2.6 times the 60 Hz one."""


def grasp_contact_simulation(env_cfg: object) -> None:
    """Hard friction (``GRASP_CONE``, ``GRASP_IMPRATIO``) at ``GRASP_PHYSICS_HZ`` on the task's physics, on either
    runtime: the whole of a grasping task's physics (it sets the timing too)."""
    servo_rate_simulation(env_cfg, physics_hz=GRASP_PHYSICS_HZ)
    physics = env_cfg.sim.physics
    if ISAACLAB:
        for preset in (physics.newton_mjwarp, physics.default):
            preset.solver_cfg.cone, preset.solver_cfg.impratio = GRASP_CONE, GRASP_IMPRATIO
    else:
        physics.cone, physics.impratio = GRASP_CONE, GRASP_IMPRATIO


def servo_rate_simulation(env_cfg: object, physics_hz: int = 60) -> None:
    """The arm's timing in every task: the policy at ``POLICY_HZ``, as the real arm is streamed, over physics at
    ``physics_hz`` (a multiple of it; 60 Hz, decimation 2, unless the task's contacts need more) on the project's
    solver settings."""
    if physics_hz % POLICY_HZ:
        raise ValueError(f"physics at {physics_hz} Hz is not a multiple of the {POLICY_HZ} Hz policy: use 60, 120, "
                         f"180, 240, ...")
    env_cfg.decimation = physics_hz // POLICY_HZ
    env_cfg.sim.dt = 1.0 / physics_hz
    env_cfg.sim.render_interval = env_cfg.decimation
    env_cfg.sim.physics = RoArmPhysicsCfg()
