"""PPO for RoArm-Lift-v0: 1024 envs x 24 steps per iteration, as reach, with wider networks (a grasp is a harder
function of the state than a reach) and more entropy.

Entropy 0.006 is what finds lifts: with 0.001 (reach's) or 0.003 the action noise shrank before any lift was found.
But under it the noise keeps growing (rsl_rl's ``Policy/mean_std`` 0.99 -> 1.27 at iteration 800 -> 2.12 at 1500)
and the carry degrades: in a 1500-iteration run the best evaluated checkpoint was iteration 800 (0.36 nominal
success, docs/tasks.md) and the last scored 0.10. So the default stops at 800 (about 21 minutes on 2 cores); an
entropy or noise schedule is the next step.
"""

from roarm_lab.isaaclab_api import RslRlMLPModelCfg, RslRlPpoAlgorithmCfg, configclass

from roarm_lab.agents.common import RoArmPPORunnerCfg


@configclass
class RoArmLiftPPORunnerCfg(RoArmPPORunnerCfg):
    experiment_name = "roarm_lift"
    max_iterations = 800
    num_steps_per_env = 24
    save_interval = 50
    device = "cpu"
    obs_groups = {"actor": ["policy"], "critic": ["critic"]}
    actor = RslRlMLPModelCfg(
        hidden_dims=[128, 128], activation="elu", obs_normalization=True,
        distribution_cfg=RslRlMLPModelCfg.GaussianDistributionCfg(init_std=1.0, std_type="log"))
    critic = RslRlMLPModelCfg(hidden_dims=[128, 128], activation="elu", obs_normalization=True)
    algorithm = RslRlPpoAlgorithmCfg(
        num_learning_epochs=5, num_mini_batches=4, learning_rate=1e-3, schedule="adaptive", gamma=0.98, lam=0.95,
        entropy_coef=0.006, desired_kl=0.01, max_grad_norm=1.0, value_loss_coef=1.0, use_clipped_value_loss=True,
        clip_param=0.2)
