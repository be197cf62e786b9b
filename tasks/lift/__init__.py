"""``RoArm-Lift-v0``: grasp a cube on the table and carry it to a goal above the table."""

from roarm_lab.tasks.registration import register_task

register_task("RoArm-Lift-v0", __name__, "lift_env_cfg:RoArmLiftEnvCfg",
              "roarm_lab.agents.lift_ppo_cfg:RoArmLiftPPORunnerCfg")
