"""PPO for RoArm-Reach-v0: 13 to 16 minutes on a 2-core laptop.

900 iterations: against the servo model (0.1..0.27 s latency, ~2 rad/s) 450 stopped at 0.93 nominal success
and 86 % of 50 emulator targets; 900 (with 12 s episodes) reach 0.92 to 0.98 depending on the seed and the machine's
numerics, still rising at the end (docs/benchmarks.md, docs/training_curves.png). The classes are
``isaaclab_rl.rsl_rl``'s with Isaac Lab selected, so ``isaaclab train --rl_library rsl_rl`` reads this too.
"""

from roarm_lab.compat import RslRlMLPModelCfg, RslRlOnPolicyRunnerCfg, RslRlPpoAlgorithmCfg, configclass


@configclass
class RoArmReachPPORunnerCfg(RslRlOnPolicyRunnerCfg):
    experiment_name = "roarm_reach"
    max_iterations = 900
    num_steps_per_env = 24
    save_interval = 50
    device = "cpu"
    obs_groups = {"actor": ["policy"], "critic": ["critic"]}
    actor = RslRlMLPModelCfg(
        hidden_dims=[128, 128], activation="elu", obs_normalization=True,
        distribution_cfg=RslRlMLPModelCfg.GaussianDistributionCfg(init_std=1.0, std_type="log"))
    critic = RslRlMLPModelCfg(hidden_dims=[128, 128], activation="elu", obs_normalization=True)
    algorithm = RslRlPpoAlgorithmCfg(
        num_learning_epochs=5, num_mini_batches=4, learning_rate=1e-3, schedule="adaptive", gamma=0.99, lam=0.95,
        entropy_coef=0.001, desired_kl=0.01, max_grad_norm=1.0, value_loss_coef=1.0, use_clipped_value_loss=True,
        clip_param=0.2)
