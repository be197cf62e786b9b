"""``RoArm-Reach-v0``: move the hand to a target position. Registered like Isaac Lab's own tasks."""

import gymnasium as gym

from roarm_lab.compat import ENTRY_POINT

gym.register(
    id="RoArm-Reach-v0",
    entry_point=ENTRY_POINT,
    disable_env_checker=True,
    kwargs={
        "env_cfg_entry_point": f"{__name__}.reach_env_cfg:RoArmReachEnvCfg",
        "rsl_rl_cfg_entry_point": "roarm_lab.agents.reach_ppo_cfg:RoArmReachPPORunnerCfg",
    },
)

gym.register(
    id="RoArm-Reach-Play-v0",
    entry_point=ENTRY_POINT,
    disable_env_checker=True,
    kwargs={
        "env_cfg_entry_point": f"{__name__}.reach_env_cfg:RoArmReachEnvCfg_PLAY",
        "rsl_rl_cfg_entry_point": "roarm_lab.agents.reach_ppo_cfg:RoArmReachPPORunnerCfg",
    },
)
