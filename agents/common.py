"""What every RoArm agent config adds to Isaac Lab's rsl_rl runner config."""

from roarm_lab.isaaclab_api import RslRlOnPolicyRunnerCfg, configclass


@configclass
class RoArmPPORunnerCfg(RslRlOnPolicyRunnerCfg):
    entropy_schedule: list | None = None
    """``[[iteration, coefficient], ...]``: PPO's entropy coefficient, linear between the points and constant
    beyond them (``rl/schedules.py``; rsl_rl keeps it constant). None: ``algorithm.entropy_coef`` throughout.
    A field here, so ``agent.entropy_schedule=[[0,0.006],[900,0.0]]`` is an override like any other."""
