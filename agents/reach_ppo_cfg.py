"""PPO for RoArm-Reach-v0: about 13 minutes on a 2-core laptop.

900 iterations: against the servo model (0.1..0.27 s latency, ~2 rad/s) 450 stopped at 0.93 nominal success
and 86 % of 50 emulator targets; 900 (with 12 s episodes) reach 0.98 and about 90 %.
"""

from roarm_lab.compat import configclass
from roarm_lab.rl.runner_cfg import RslRlMlpModelCfg, RslRlOnPolicyRunnerCfg, RslRlPpoAlgorithmCfg


@configclass
class RoArmReachPPORunnerCfg(RslRlOnPolicyRunnerCfg):
    experiment_name: str = "roarm_reach"
    max_iterations: int = 900
    num_steps_per_env: int = 24
    save_interval: int = 50
    actor: RslRlMlpModelCfg = RslRlMlpModelCfg(
        hidden_dims=[128, 128], distribution_cfg={"class_name": "rsl_rl.modules.GaussianDistribution",
                                                  "init_std": 1.0, "std_type": "log"})
    critic: RslRlMlpModelCfg = RslRlMlpModelCfg(hidden_dims=[128, 128])
    algorithm: RslRlPpoAlgorithmCfg = RslRlPpoAlgorithmCfg(num_learning_epochs=5, num_mini_batches=4)
