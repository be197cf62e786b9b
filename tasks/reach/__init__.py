"""``RoArm-Reach-v0``: move the hand to a target position. Registered like Isaac Lab's own tasks."""

from roarm_lab.tasks.registration import register_task

register_task("RoArm-Reach-v0", __name__, "reach_env_cfg:RoArmReachEnvCfg",
              "roarm_lab.agents.reach_ppo_cfg:RoArmReachPPORunnerCfg")
