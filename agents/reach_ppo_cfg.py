"""PPO for RoArm-Reach-v0, sized to train on a 2-core laptop in under ten minutes."""

from roarm_lab.compat import configclass
from roarm_lab.rl.runner_cfg import RslRlMlpModelCfg, RslRlOnPolicyRunnerCfg, RslRlPpoAlgorithmCfg


@configclass
class RoArmReachPPORunnerCfg(RslRlOnPolicyRunnerCfg):
    experiment_name: str = "roarm_reach"
    max_iterations: int = 450
    num_steps_per_env: int = 24
    save_interval: int = 50
    actor: RslRlMlpModelCfg = RslRlMlpModelCfg(
        hidden_dims=[128, 128], distribution_cfg={"class_name": "rsl_rl.modules.GaussianDistribution",
                                                  "init_std": 1.0, "std_type": "log"})
    critic: RslRlMlpModelCfg = RslRlMlpModelCfg(hidden_dims=[128, 128])
    algorithm: RslRlPpoAlgorithmCfg = RslRlPpoAlgorithmCfg(num_learning_epochs=5, num_mini_batches=4)
