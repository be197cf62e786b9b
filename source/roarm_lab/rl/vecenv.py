"""rsl_rl's ``VecEnv`` over a manager-based environment (either runtime)."""

from __future__ import annotations

from typing import Any

import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict


class RslRlVecEnvWrapper(VecEnv):
    """Observation groups become a TensorDict; time-outs and log metrics pass through ``extras``."""

    def __init__(self, env: Any, clip_actions: float | None = None):
        self.env = env.unwrapped
        self.cfg = self.env.cfg
        self.num_envs = self.env.num_envs
        self.device = self.env.device
        self.max_episode_length = self.env.max_episode_length
        self.num_actions = self.env.action_manager.total_action_dim
        self.clip_actions = clip_actions
        obs, _ = self.env.reset()
        self._obs = TensorDict(obs, batch_size=[self.num_envs])

    @property
    def episode_length_buf(self) -> torch.Tensor:
        return self.env.episode_length_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.env.episode_length_buf = value

    def get_observations(self) -> TensorDict:
        return self._obs

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        if self.clip_actions is not None:
            actions = torch.clamp(actions, -self.clip_actions, self.clip_actions)
        obs, rew, terminated, truncated, env_extras = self.env.step(actions)
        self._obs = TensorDict(obs, batch_size=[self.num_envs])
        dones = (terminated | truncated).to(dtype=torch.long)
        # Isaac Lab writes extras["log"] only on the steps that reset something and leaves it there: hand it
        # to rsl_rl once, so one episode's metrics are not averaged in again on every later step.
        extras = {"time_outs": truncated}
        if "log" in env_extras:
            extras["log"] = env_extras.pop("log")
        return self._obs, rew, dones, extras

    def close(self) -> None:
        self.env.close()
