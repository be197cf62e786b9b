"""rsl_rl 5.x runner configuration for the embedded runtime, under ``isaaclab_rl.rsl_rl``'s names and fields.

With Isaac Lab selected, ``roarm_lab.isaaclab_api`` gives Isaac Lab's own classes instead, so an agent config
written once works with this project's scripts and with ``isaaclab train``. Either way ``to_rsl_rl_dict``
makes the plain dict ``OnPolicyRunner`` takes.
"""

from __future__ import annotations

from roarm_lab.embedded.configclass import MISSING, configclass


@configclass
class RslRlMLPModelCfg:
    @configclass
    class DistributionCfg:
        class_name: str = MISSING

    @configclass
    class GaussianDistributionCfg(DistributionCfg):
        class_name: str = "GaussianDistribution"
        init_std: float = MISSING
        std_type: str = "scalar"
        std_range: tuple[float, float] = (1e-6, 1e6)
        """rsl_rl clamps the action noise to this range (Isaac Lab 3's field and default)."""

    class_name: str = "MLPModel"
    hidden_dims: list[int] = MISSING
    activation: str = MISSING
    obs_normalization: bool = False
    distribution_cfg: DistributionCfg | None = None


@configclass
class RslRlPpoAlgorithmCfg:
    class_name: str = "PPO"
    num_learning_epochs: int = MISSING
    num_mini_batches: int = MISSING
    learning_rate: float = MISSING
    schedule: str = MISSING
    gamma: float = MISSING
    lam: float = MISSING
    entropy_coef: float = MISSING
    desired_kl: float = MISSING
    max_grad_norm: float = MISSING
    value_loss_coef: float = MISSING
    use_clipped_value_loss: bool = MISSING
    clip_param: float = MISSING


@configclass
class RslRlOnPolicyRunnerCfg:
    class_name: str = "OnPolicyRunner"
    seed: int = 42
    device: str = "cpu"
    num_steps_per_env: int = MISSING
    max_iterations: int = MISSING
    obs_groups: dict[str, list[str]] = MISSING
    clip_actions: float | None = None
    save_interval: int = MISSING
    experiment_name: str = MISSING
    run_name: str = ""
    logger: str = "tensorboard"
    actor: RslRlMLPModelCfg = MISSING
    critic: RslRlMLPModelCfg = MISSING
    algorithm: RslRlPpoAlgorithmCfg = MISSING
