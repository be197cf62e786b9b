"""rsl_rl's ``OnPolicyRunner`` with atomic checkpoints, a progress bar, and the config hash in each checkpoint."""

from __future__ import annotations

from typing import Any

import torch
from rsl_rl.runners import OnPolicyRunner

from roarm_lab.rl.checkpoints import load_checkpoint, restore
from roarm_lab.rl.progress import ProgressLogger
from roarm_lab.utils.io import atomic_write


def env_state(vec_env: Any) -> dict[str, int]:
    """What a resumed run needs from the environment to continue as if never stopped: the step counter that
    curricula read (a resume that restarts it from 0 would replay the reward curriculum from the start)."""
    return {"common_step_counter": int(vec_env.env.common_step_counter)}


def restore_env_state(vec_env: Any, state: dict[str, Any] | None) -> None:
    """Put a checkpoint's environment state back (checkpoints written before it existed have none)."""
    if state and "common_step_counter" in state:
        vec_env.env.common_step_counter = int(state["common_step_counter"])


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

    def load(self, path: str, load_cfg: dict | None = None, strict: bool = True, map_location: str | None = None) -> dict:
        """rsl_rl's ``load`` signature on the safe path: ``OnPolicyRunner.load`` unpickles arbitrary objects
        (its loader runs with the weights-only guard off), so a crafted file would run code; here the file is read
        by ``load_checkpoint`` (tensors and plain data only), every tensor's name and shape is checked, and the
        environment state comes back too.
        Loading is always strict and lands on the networks' own device (``strict``/``map_location`` are ignored)."""
        checkpoint = load_checkpoint(path)
        restore(self.alg, checkpoint, path, load_cfg)
        if load_cfg is None or load_cfg.get("iteration"):
            self.current_learning_iteration = int(checkpoint.get("iter", 0))
            restore_env_state(self.env, checkpoint.get("env_state"))
        return checkpoint.get("infos") or {}

    def save(self, path: str, infos: dict | None = None) -> None:
        """Write the checkpoint atomically: a run killed mid-save leaves the previous one intact."""
        saved = self.alg.save()
        saved["iter"] = self.current_learning_iteration
        saved["infos"] = {**self.checkpoint_infos, **(infos or {})}
        saved["env_state"] = env_state(self.env)
        atomic_write(path, lambda tmp: torch.save(saved, tmp))
        self.logger.save_model(path, self.current_learning_iteration)
