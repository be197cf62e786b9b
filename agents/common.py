"""What every RoArm agent config adds to Isaac Lab's rsl_rl runner config."""

from roarm_lab.isaaclab_api import RslRlOnPolicyRunnerCfg, configclass


@configclass
class RoArmPPORunnerCfg(RslRlOnPolicyRunnerCfg):
    entropy_schedule: list | None = None
    """``[[iteration, coefficient], ...]``: PPO's entropy coefficient, linear between the points and constant
    beyond them (``rl/schedules.py``; rsl_rl keeps it constant). None: ``algorithm.entropy_coef`` throughout.
    A field here, so ``agent.entropy_schedule=[[0,0.006],[900,0.0]]`` is an override like any other."""
    entropy_hold: list | None = None
    """``[iteration, success]``: the schedule's clock stops at ``iteration`` until the training success rate (the
    task profile's success metric over an iteration's finished episodes) reaches ``success``, so a run that finds
    the task late still explores at full strength until it does. None: the clock is the iteration.
    ``agent.entropy_hold=[150,0.05]`` on the command line."""
