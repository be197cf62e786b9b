"""rsl_rl 5.x runner configuration as a config class (overridable as ``agent.*``), turned into its dict."""

from __future__ import annotations

from typing import Any

from roarm_lab.compat import MISSING, configclass
from roarm_lab.runtime.configclass import to_dict


@configclass
class RslRlMlpModelCfg:
    class_name: str = "rsl_rl.models.MLPModel"
    hidden_dims: list[int] = [128, 128]
    activation: str = "elu"
    obs_normalization: bool = True
    distribution_cfg: dict | None = None


@configclass
class RslRlPpoAlgorithmCfg:
    class_name: str = "rsl_rl.algorithms.PPO"
    num_learning_epochs: int = 5
    num_mini_batches: int = 4
    clip_param: float = 0.2
    gamma: float = 0.99
    lam: float = 0.95
    value_loss_coef: float = 1.0
    entropy_coef: float = 0.001
    learning_rate: float = 1e-3
    max_grad_norm: float = 1.0
    use_clipped_value_loss: bool = True
    schedule: str = "adaptive"
    desired_kl: float = 0.01


@configclass
class RslRlOnPolicyRunnerCfg:
    experiment_name: str = MISSING
    run_name: str = ""
    seed: int = 42
    device: str = "cpu"
    num_steps_per_env: int = 24
    max_iterations: int = MISSING
    save_interval: int = 50
    obs_groups: dict[str, list[str]] = {"actor": ["policy"], "critic": ["critic"]}
    actor: RslRlMlpModelCfg = RslRlMlpModelCfg(
        distribution_cfg={"class_name": "rsl_rl.modules.GaussianDistribution", "init_std": 1.0, "std_type": "log"})
    critic: RslRlMlpModelCfg = RslRlMlpModelCfg()
    algorithm: RslRlPpoAlgorithmCfg = RslRlPpoAlgorithmCfg()
    logger: str = "tensorboard"


def to_rsl_rl_dict(cfg: RslRlOnPolicyRunnerCfg) -> dict[str, Any]:
    """The plain dict ``OnPolicyRunner`` takes."""
    return to_dict(cfg)
