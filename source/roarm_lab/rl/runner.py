"""rsl_rl's ``OnPolicyRunner`` with atomic, pruned checkpoints, a progress bar, and the config hash in each one."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import torch
from rsl_rl.runners import OnPolicyRunner

from roarm_lab.rl.checkpoints import keep_newest_and_best, load_checkpoint, restore
from roarm_lab.rl.progress import ProgressLogger
from roarm_lab.rl.progress_record import SUCCESS_RECORD
from roarm_lab.rl.schedules import ScheduleClock, entropy_at, entropy_hold, entropy_schedule
from roarm_lab.embedded.configclass import to_dict
from roarm_lab.utils.io import atomic_write_bytes

KEEP_CHECKPOINTS = 3
"""model_<N>.pt files a run keeps besides its best (``save_interval=1`` would otherwise fill the disk)."""


def env_state(vec_env: Any) -> dict[str, int]:
    """What a resumed run needs from the environment to continue as if never stopped: the step counter that
    curricula read (a resume that restarts it from 0 would replay the reward curriculum from the start)."""
    return {"common_step_counter": int(vec_env.env.common_step_counter)}


def restore_env_state(vec_env: Any, state: dict[str, Any] | None) -> None:
    """Put a checkpoint's environment state back (checkpoints written before it existed have none)."""
    if state and "common_step_counter" in state:
        vec_env.env.common_step_counter = int(state["common_step_counter"])


def restored_clock(checkpoint: dict[str, Any], iteration: int, hold: tuple[int, float] | None) -> ScheduleClock:
    """The schedule's clock a checkpoint saved; one written before clocks were saved (or an odd entry) gives the
    clock its iteration, open."""
    clock = ScheduleClock(iteration, hold)
    saved = checkpoint.get("schedule_clock")
    if isinstance(saved, dict) and type(saved.get("value")) is int and saved["value"] >= 0 \
            and type(saved.get("opened")) is bool:
        clock.value, clock.opened = saved["value"], saved["opened"] or hold is None
    else:
        clock.opened = True
    return clock


class RoArmRunner(OnPolicyRunner):
    def __init__(self, env: Any, train_cfg: dict, log_dir: str | None, device: str, *, total_iterations: int,
                 checkpoint_infos: dict | None = None, show_progress: bool = True,
                 metric_keys: tuple[str, str] | None = None,
                 keep_checkpoints: int = KEEP_CHECKPOINTS):
        printed = io.StringIO()  # rsl_rl prints the networks and observation sets: the run's log keeps them
        with contextlib.redirect_stdout(printed):
            super().__init__(env, train_cfg, log_dir=log_dir, device=device)
        self._fuse_adam()
        self._gather_mini_batches_by_row()
        self.logger = ProgressLogger(log_dir, self.cfg, self.env.cfg, self.env.num_envs, self.is_distributed,
                                     self.gpu_world_size, self.gpu_global_rank, self.device,
                                     total_iterations=total_iterations, show=show_progress, metric_keys=metric_keys)
        self._startup_print = printed.getvalue()
        """Written to the run's console log when training starts (a refused resume leaves the folder untouched)."""
        self.checkpoint_infos = checkpoint_infos or {}
        self.keep_checkpoints = keep_checkpoints
        self.entropy_schedule = entropy_schedule(train_cfg.get("entropy_schedule"))
        self.entropy_hold = entropy_hold(train_cfg.get("entropy_hold"))
        if self.entropy_hold is not None and self.is_distributed:
            raise ValueError("agent.entropy_hold reads each rank's own success rate, so ranks would leave the hold at "
                             "different iterations; train it in one process (drop agent.entropy_hold under torchrun)")
        self._clock: ScheduleClock | None = None
        self._schedule_entropy()

    def _configure_multi_gpu(self) -> None:
        """rsl_rl's set-up, with ``gloo`` for ranks on CPUs (rsl_rl fixes ``nccl``): see ``rl/distributed.py``."""
        from roarm_lab.rl.distributed import configure

        configure(self, self.device)

    def _fuse_adam(self) -> None:
        """The same Adam, as one fused kernel per step instead of a Python loop over parameters (CPU and CUDA):
        with two small networks the loop was a tenth of each update. The math and the state dict are Adam's."""
        old = self.alg.optimizer
        if type(old) is torch.optim.Adam and not old.state:
            groups = [{k: v for k, v in g.items() if k not in ("fused", "foreach")} for g in old.param_groups]
            self.alg.optimizer = torch.optim.Adam(groups, fused=True)

    def _gather_mini_batches_by_row(self) -> None:
        """The same mini-batches, gathered with ``index_select`` (a row copy) instead of advanced indexing
        (element by element): on the CPU that was an eighth of each update. Same permutation, same batches,
        same order (``tests/test_train_play_cli.py`` compares them with rsl_rl's own generator)."""
        storage = getattr(self.alg, "storage", None)
        if storage is None or getattr(storage, "training_type", None) != "rl":
            return
        storage.mini_batch_generator = _RowGatheredMiniBatches(storage)

    def _schedule_entropy(self) -> None:
        """Set PPO's entropy coefficient from the schedule before each update (rsl_rl has no schedule of its own):
        exploration early, a precise policy late. The schedule reads a clock that counts updates (held at
        ``entropy_hold`` until the task succeeds: ``ScheduleClock``); checkpoints keep the clock, so a resumed run
        continues the schedule where it stopped."""
        if self.entropy_schedule is None:
            return
        update = self.alg.update

        def scheduled_update(*args: Any, **kwargs: Any) -> Any:
            self.alg.entropy_coef = entropy_at(self.entropy_schedule, self._clock.value)
            self._clock.advance(self.logger.latest.get(SUCCESS_RECORD))
            return update(*args, **kwargs)

        self.alg.update = scheduled_update

    def learn(self, num_learning_iterations: int, init_at_random_ep_len: bool = False) -> None:
        """rsl_rl's loop; a failure (a full disk) stops the logger's writer thread before it propagates."""
        if self._clock is None:
            self._clock = ScheduleClock(self.current_learning_iteration, self.entropy_hold)
        self.logger.to_console_log(self._startup_print)
        self._startup_print = ""
        try:
            super().learn(num_learning_iterations, init_at_random_ep_len)
        except BaseException:
            self.logger.abandon()
            raise

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
            self._clock = restored_clock(checkpoint, self.current_learning_iteration, self.entropy_hold)
        return checkpoint.get("infos") or {}

    def save(self, path: str, infos: dict | None = None) -> None:
        """Write the checkpoint atomically (a run killed mid-save, or a full disk, leaves the previous one intact),
        then prune the run's checkpoints to the newest ``keep_checkpoints`` and the best (``keep_newest_and_best``).

        It is serialized in memory first: torch's file writer turns a full disk into a ``RuntimeError`` without its
        errno, a plain write raises ``OSError(ENOSPC)``, which ``train.py`` reports in one line."""
        saved = self.alg.save()
        saved["iter"] = self.current_learning_iteration
        saved["infos"] = {**self.checkpoint_infos, **(infos or {})}
        saved["env_state"] = env_state(self.env)
        if self._clock is not None:
            saved["schedule_clock"] = {"value": self._clock.value, "opened": self._clock.opened}
        buffer = io.BytesIO()
        torch.save(saved, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        self.logger.save_model(path, self.current_learning_iteration)
        if self.logger.log_dir is not None and Path(path).parent == Path(self.logger.log_dir):
            keep_newest_and_best(Path(path), self.current_learning_iteration, self.logger.latest, self.keep_checkpoints)


class _RowGatheredMiniBatches:
    """``RolloutStorage.mini_batch_generator`` (rsl_rl 5.5) with every field gathered by ``index_select``."""

    def __init__(self, storage: Any):
        self.storage = storage

    def __call__(self, num_mini_batches: int, num_epochs: int = 8):
        st = self.storage
        size = (st.num_envs * st.num_transitions_per_env) // num_mini_batches
        indices = torch.randperm(num_mini_batches * size, requires_grad=False, device=st.device)
        observations = st.observations.flatten(0, 1)
        fields = [t.flatten(0, 1) for t in (st.actions, st.values, st.advantages, st.returns, st.actions_log_prob)]
        distribution = [p.flatten(0, 1) for p in st.distribution_params]
        for _ in range(num_epochs):
            for i in range(num_mini_batches):
                idx = indices[i * size:(i + 1) * size]
                actions, values, advantages, returns, log_prob = (t.index_select(0, idx) for t in fields)
                obs = observations.apply(lambda t, rows=idx: t.index_select(0, rows), batch_size=[size])
                yield type(st).Batch(
                    observations=obs, actions=actions, values=values, advantages=advantages, returns=returns,
                    old_actions_log_prob=log_prob, old_distribution_params=tuple(p.index_select(0, idx)
                                                                                 for p in distribution))


def to_rsl_rl_dict(cfg: Any) -> dict[str, Any]:
    """The plain dict ``OnPolicyRunner`` takes, from either runtime's runner config class.

    Isaac Lab's classes carry fields rsl_rl 5 no longer reads (``stochastic``, ``init_noise_std``, ...,
    left MISSING); ``isaaclab_rl`` clears them the way its own ``train`` does.
    """
    if any(base.__module__.startswith("isaaclab_rl") for base in type(cfg).__mro__):
        import importlib.metadata

        from isaaclab_rl.rsl_rl.utils import handle_deprecated_rsl_rl_cfg

        cfg = handle_deprecated_rsl_rl_cfg(cfg, importlib.metadata.version("rsl-rl-lib"))
        return cfg.to_dict()
    return to_dict(cfg)
