"""Rollouts recorded while a policy trains (``train.py --record-rollouts-every N``): every N iterations a few
episodes of the current policy in a small copy of the training environment (its randomization on, the engine's
energy on), written in play.py's rollout format with a physics report in ``meta.json``.

The copy is a second environment in the training process, which the embedded runtime allows and Isaac Lab (one
simulation per process) does not: there the flag is refused before training starts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

EPISODES = 4
ROLLOUTS_DIR = "rollouts"


class RolloutRecorder:
    def __init__(self, task: str, env_cfg: Any, every: int, run_dir: Path):
        self.task, self.every, self.run_dir = task, every, Path(run_dir)
        self.cfg = copy.deepcopy(env_cfg)
        self.cfg.scene.num_envs = EPISODES
        self.cfg.compute_final_obs = True  # evaluate() reads each episode's last error from the final observation
        self.cfg.sim.physics.nthread = 1
        self.cfg.sim.physics.energy = True
        self.env: Any = None
        self.written: list[Path] = []

    def folder(self, iteration: int) -> Path:
        return self.run_dir / ROLLOUTS_DIR / f"iteration_{iteration:05d}"

    def __call__(self, iteration: int, runner: Any) -> None:
        """After ``iteration`` (rsl_rl's, from 0): record if it ends a period of ``every``."""
        if (iteration + 1) % self.every:
            return
        from roarm_lab.registry import make_env
        from roarm_lab.rl.evaluate import evaluate

        actor = runner.get_inference_policy()
        numpy_state = np.random.get_state()
        try:  # the recording draws its own random numbers: training's stream goes on as if it had not run
            with torch.random.fork_rng():
                if self.env is None:
                    self.env = make_env(self.task, self.cfg)
                evaluate(self.env, lambda obs: actor(TensorDict({"policy": obs}, batch_size=[obs.shape[0]])),
                         EPISODES, record_dir=self.folder(iteration), task=self.task, show_progress=False)
        finally:
            np.random.set_state(numpy_state)
            runner.alg.train_mode()  # the next iteration trains (its normalizer updates) as before
        self.written.append(self.folder(iteration))

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
