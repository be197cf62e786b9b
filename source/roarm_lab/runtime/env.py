"""``ManagerBasedRLEnv`` of the embedded runtime: Isaac Lab's step loop over a MuJoCo backend.

The loop follows Isaac Lab's: process the action; apply it and step physics ``decimation`` times;
update the scene; terminations, rewards, partial resets (curriculum, scene, events, managers); commands
and interval events; observations. Diverged simulations (NaN, MuJoCo's bad-state reset) are reset with
their episode and counted in ``extras["log"]["Episode_Termination/sim_diverged"]``; they never stop a run.
"""

from __future__ import annotations

import math
import re
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from roarm_lab.runtime.articulation import Articulation
from roarm_lab.runtime.backends import make_backend
from roarm_lab.runtime.configclass import missing_fields
from roarm_lab.runtime.managers import (ActionManager, CommandManager, CurriculumManager, EventManager,
                                        ObservationManager, RewardManager, TerminationManager)


class InteractiveScene:
    """The scene's assets by name: ``env.scene["robot"]``."""

    def __init__(self, assets: dict[str, Any], num_envs: int, device: str):
        self._assets = assets
        self.num_envs = num_envs
        self.device = device
        self.env_origins = torch.zeros(num_envs, 3, device=device)

    def __getitem__(self, name: str) -> Any:
        if name not in self._assets:
            raise KeyError(f"no asset '{name}' in the scene; available: {sorted(self._assets)}")
        return self._assets[name]

    @property
    def articulations(self) -> dict[str, Any]:
        return dict(self._assets)


def _resolve_joint_values(spec: dict[str, float], names: list[str]) -> list[float]:
    values = []
    for name in names:
        matches = [v for pattern, v in spec.items() if re.fullmatch(pattern, name)]
        values.append(float(matches[-1]) if matches else 0.0)
    return values


class ManagerBasedRLEnv(gym.Env):
    """A vectorized RL environment built from a manager-based configuration."""

    is_vector_env = True

    def __init__(self, cfg: Any, render_mode: str | None = None, physics_backend: str = "mujoco-cpu",
                 num_threads: int = 0, **kwargs: Any):
        missing = missing_fields(cfg)
        if missing:
            raise ValueError(f"the environment config leaves these fields MISSING: {missing}")
        self.cfg = cfg
        self.render_mode = render_mode
        self.num_envs = int(cfg.scene.num_envs)
        self.device = cfg.sim.device
        self.physics_dt = float(cfg.sim.dt)
        self.step_dt = self.physics_dt * cfg.decimation
        self.action_apply_dt = self.step_dt
        """Time between ``apply_action`` calls: one per control step (Isaac Lab: one per physics step)."""
        self.max_episode_length_s = float(cfg.episode_length_s)
        self.max_episode_length = math.ceil(self.max_episode_length_s / self.step_dt)
        if cfg.seed is not None:
            self.seed(cfg.seed)

        self.sim = make_backend(physics_backend, num_envs=self.num_envs, physics_dt=self.physics_dt,
                                nthread=num_threads)
        robot_cfg = cfg.scene.robot
        robot = Articulation(self.sim, self.device,
                             _resolve_joint_values(robot_cfg.init_state.joint_pos, self.sim.joint_names),
                             robot_cfg.init_state.pos)
        self.scene = InteractiveScene({"robot": robot}, self.num_envs, self.device)

        self.episode_length_buf = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.common_step_counter = 0
        self.reset_buf = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self.extras: dict[str, Any] = {"log": {}}
        self.sim_diverged_count = 0

        self.event_manager = EventManager(cfg.events, self)
        self.command_manager = CommandManager(cfg.commands, self)
        self.action_manager = ActionManager(cfg.actions, self)
        self.observation_manager = ObservationManager(cfg.observations, self)
        self.termination_manager = TerminationManager(cfg.terminations, self)
        self.reward_manager = RewardManager(cfg.rewards, self)
        self.curriculum_manager = CurriculumManager(cfg.curriculum, self)
        self.event_manager.apply("startup")

        n_obs = self.observation_manager.group_obs_dim["policy"][0]
        self.single_observation_space = gym.spaces.Dict(
            {"policy": gym.spaces.Box(-np.inf, np.inf, shape=(n_obs,), dtype=np.float32)})
        self.single_action_space = gym.spaces.Box(-np.inf, np.inf, shape=(self.action_manager.total_action_dim,),
                                                  dtype=np.float32)
        self.obs_buf: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ gym API
    @property
    def unwrapped(self) -> "ManagerBasedRLEnv":
        return self

    def seed(self, seed: int) -> int:
        torch.manual_seed(seed)
        np.random.seed(seed)
        return seed

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, torch.Tensor], dict]:
        if seed is not None:
            self.seed(seed)
        self._reset_idx(torch.arange(self.num_envs, device=self.device))
        self.obs_buf = self.observation_manager.compute()
        return self.obs_buf, self.extras

    def step(self, action: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        # The managers' tensors are small: one torch thread runs them fastest, and leaves the cores to the
        # engine's threads (torch's idle workers would otherwise spin against them; 15 % at 2048 envs).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._step(action)
        finally:
            torch.set_num_threads(threads)

    def _step(self, action: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        action = action.to(self.device)
        self.action_manager.process_action(action)
        robot = self.scene["robot"]
        # Servo targets are constant over the control period, so all substeps run in one native call.
        self.action_manager.apply_action()
        robot.write_data_to_sim()
        diverged = torch.from_numpy(self.sim.step(self.cfg.decimation)).to(self.device)
        robot.update(self.step_dt)
        self.command_manager.update_metrics()

        self.episode_length_buf += 1
        self.common_step_counter += 1
        self.termination_manager.compute()
        reset_terminated = self.termination_manager.terminated | diverged
        self.reset_buf = reset_terminated | self.termination_manager.time_outs
        reward = self.reward_manager.compute(dt=self.step_dt)

        self.extras["log"] = {}
        reset_ids = self.reset_buf.nonzero(as_tuple=False).flatten()
        if len(reset_ids) > 0:
            self._reset_idx(reset_ids)
            n_div = int(diverged.sum())
            self.sim_diverged_count += n_div
            self.extras["log"]["Episode_Termination/sim_diverged"] = n_div
        self.command_manager.compute(dt=self.step_dt)
        self.event_manager.apply("interval", dt=self.step_dt)
        self.obs_buf = self.observation_manager.compute()
        self.extras["time_outs"] = self.termination_manager.time_outs & ~diverged
        return self.obs_buf, reward, reset_terminated, self.extras["time_outs"], self.extras

    def _reset_idx(self, env_ids: torch.Tensor) -> None:
        self.curriculum_manager.compute(env_ids)
        robot = self.scene["robot"]
        robot.write_joint_state_to_sim(robot.data.default_joint_pos[env_ids], robot.data.default_joint_vel[env_ids],
                                       env_ids=env_ids)
        self.event_manager.apply("reset", env_ids)
        log = self.extras.setdefault("log", {})
        for manager in (self.observation_manager, self.action_manager, self.reward_manager, self.curriculum_manager,
                        self.command_manager, self.event_manager, self.termination_manager):
            log.update(manager.reset(env_ids))
        self.episode_length_buf[env_ids] = 0

    def close(self) -> None:
        pass
