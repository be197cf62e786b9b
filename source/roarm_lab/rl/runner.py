"""rsl_rl's ``OnPolicyRunner`` with atomic checkpoints, a progress bar, and the config hash in each checkpoint."""

from __future__ import annotations

from typing import Any

import torch
from rsl_rl.runners import OnPolicyRunner

from roarm_lab.rl.progress import ProgressLogger
from roarm_lab.utils.io import atomic_write


class RoArmRunner(OnPolicyRunner):
    def __init__(self, env: Any, train_cfg: dict, log_dir: str | None, device: str, *, total_iterations: int,
                 checkpoint_infos: dict | None = None, show_progress: bool = True):
        super().__init__(env, train_cfg, log_dir=log_dir, device=device)
        self._fuse_adam()
        self.logger = ProgressLogger(log_dir, self.cfg, self.env.cfg, self.env.num_envs, self.is_distributed,
                                     self.gpu_world_size, self.gpu_global_rank, self.device,
                                     total_iterations=total_iterations, show=show_progress)
        self.checkpoint_infos = checkpoint_infos or {}

    def _fuse_adam(self) -> None:
        """The same Adam, as one fused kernel per step instead of a Python loop over parameters (CPU and CUDA):
        with two small networks the loop was a tenth of each update. The math and the state dict are Adam's."""
        old = self.alg.optimizer
        if type(old) is torch.optim.Adam and not old.state:
            groups = [{k: v for k, v in g.items() if k not in ("fused", "foreach")} for g in old.param_groups]
            self.alg.optimizer = torch.optim.Adam(groups, fused=True)

    def save(self, path: str, infos: dict | None = None) -> None:
        """Write the checkpoint atomically: a run killed mid-save leaves the previous one intact."""
        saved = self.alg.save()
        saved["iter"] = self.current_learning_iteration
        saved["infos"] = {**self.checkpoint_infos, **(infos or {})}
        atomic_write(path, lambda tmp: torch.save(saved, tmp))
        self.logger.save_model(path, self.current_learning_iteration)
