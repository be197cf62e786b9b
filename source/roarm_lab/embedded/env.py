"""``ManagerBasedRLEnv`` of the embedded runtime: Isaac Lab's step loop over a MuJoCo backend.

The loop follows Isaac Lab 3's: process the action; apply it and step physics ``decimation`` times (in one
native call: ``_physics_handles_decimation``, as Isaac Lab says of backends that do this); update the scene;
terminations, rewards, the final observations of ending episodes (``compute_final_obs``), partial resets
(curriculum, events, managers); commands (metrics, resampling) and interval events; observations. Diverged simulations (NaN, MuJoCo's bad-state reset) are reset with
their episode and counted in ``extras["log"]["Episode_Termination/sim_diverged"]``; they never stop a run.
"""

from __future__ import annotations

import math
import re
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from roarm_lab.embedded.articulation import Articulation
from roarm_lab.embedded.backends import make_backend
from roarm_lab.embedded.cfg import MujocoCpuPhysicsCfg
from roarm_lab.embedded.configclass import missing_fields
from roarm_lab.embedded.rigid_object import RigidObject
from roarm_lab.embedded.scene_model import compose_scene
from roarm_lab.embedded.managers import (ActionManager, CommandManager, CurriculumManager, EventManager,
                                        ObservationManager, RewardManager, TerminationManager)


class InteractiveScene:
    """The scene's assets by name: ``env.scene["robot"]``, ``env.scene["cube"]``."""

    def __init__(self, articulations: dict[str, Articulation], rigid_objects: dict[str, RigidObject], num_envs: int,
                 device: str):
        self._articulations = articulations
        self._rigid_objects = rigid_objects
        self.num_envs = num_envs
        self.device = device
        self.env_origins = torch.zeros(num_envs, 3, device=device)

    def __getitem__(self, name: str) -> Any:
        assets = {**self._articulations, **self._rigid_objects}
        if name not in assets:
            raise KeyError(f"no asset '{name}' in the scene; available: {sorted(assets)}")
        return assets[name]

    @property
    def articulations(self) -> dict[str, Articulation]:
        return dict(self._articulations)

    @property
    def rigid_objects(self) -> dict[str, RigidObject]:
        return dict(self._rigid_objects)

    def update(self, dt: float) -> None:
        for asset in (*self._articulations.values(), *self._rigid_objects.values()):
            asset.update(dt)


def _resolve_joint_values(spec: dict[str, float], names: list[str], default: float = 0.0) -> list[float]:
    values = []
    for name in names:
        matches = [v for pattern, v in spec.items() if re.fullmatch(pattern, name)]
        values.append(float(matches[-1]) if matches else default)
    return values


def actuator_velocity_limits(actuators: dict[str, Any], names: list[str]) -> list[float]:
    """Each joint's velocity limit from the actuator groups (``joint_velocity_limit``); unlimited where unset."""
    limits = [math.inf] * len(names)
    for group in actuators.values():
        spec = getattr(group, "joint_velocity_limit", None)
        if spec is None:
            continue
        spec = spec if isinstance(spec, dict) else {".*": spec}
        for i, name in enumerate(names):
            if any(re.fullmatch(p, name) for p in group.joint_names_expr):
                limits[i] = _resolve_joint_values(spec, [name], math.inf)[0]
    return limits


def apply_actuator_cfg(robot: Articulation, actuators: dict[str, Any]) -> None:
    """Write the scene's actuator config (gains, armature, friction, damping) into the engine, as Isaac Lab does
    at start-up: an override of ``env.scene.robot.actuators`` acts on both runtimes."""
    names = robot.joint_names
    for group in actuators.values():
        ids, _ = robot.find_joints(group.joint_names_expr)
        picked = [names[i] for i in ids]

        def values(spec: Any) -> torch.Tensor | None:
            if spec is None:
                return None
            spec = spec if isinstance(spec, dict) else {".*": spec}
            return torch.tensor([_resolve_joint_values(spec, picked)])

        for field, write in (("stiffness", lambda v: robot.write_joint_stiffness_to_sim_index(stiffness=v, joint_ids=ids)),
                             ("damping", lambda v: robot.write_joint_damping_to_sim_index(damping=v, joint_ids=ids)),
                             ("armature", lambda v: robot.write_joint_armature_to_sim_index(armature=v, joint_ids=ids)),
                             ("friction", lambda v: robot.write_joint_friction_coefficient_to_sim_index(
                                 joint_friction_coeff=v, joint_ids=ids)),
                             ("viscous_friction", lambda v: robot.write_joint_viscous_friction_coefficient_to_sim_index(
                                 joint_viscous_friction_coeff=v, joint_ids=ids)),
                             ("joint_effort_limit", lambda v: robot.backend.set_effort_limits(
                                 np.asarray(ids), v[0].double().numpy()))):
            value = values(getattr(group, field, None))
            if value is not None:
                write(value.expand(robot.num_instances, len(ids)))


class ManagerBasedRLEnv(gym.Env):
    """A vectorized RL environment built from a manager-based configuration."""

    is_vector_env = True

    def __init__(self, cfg: Any, render_mode: str | None = None, num_threads: int | None = None, **kwargs: Any):
        missing = missing_fields(cfg)
        if missing:
            raise ValueError(f"the environment config leaves these fields MISSING: {missing}")
        self.cfg = cfg
        self.render_mode = render_mode
        self.num_envs = int(cfg.scene.num_envs)
        self.device = cfg.sim.device
        self.physics_dt = float(cfg.sim.dt)
        self.step_dt = self.physics_dt * cfg.decimation
        self._physics_handles_decimation = True
        """``apply_action`` runs once per control step, all substeps in one engine call (read by the action term)."""
        self.max_episode_length_s = float(cfg.episode_length_s)
        self.max_episode_length = math.ceil(self.max_episode_length_s / self.step_dt)
        if cfg.seed is not None:
            self.seed(cfg.seed)

        physics = cfg.sim.physics if cfg.sim.physics is not None else MujocoCpuPhysicsCfg()
        if not isinstance(physics, MujocoCpuPhysicsCfg):
            raise ValueError(f"env.sim.physics is a {type(physics).__name__}: the embedded runtime runs MuJoCo on the "
                             "CPU (MujocoCpuPhysicsCfg); Isaac Lab's backends need --runtime isaaclab")
        scene_model = compose_scene(cfg.scene, self.physics_dt)
        self.sim = make_backend(physics.backend, num_envs=self.num_envs, physics_dt=self.physics_dt, scene=scene_model,
                                nthread=physics.nthread if num_threads is None else num_threads, energy=physics.energy,
                                cone=physics.cone, impratio=physics.impratio)
        robot_cfg = getattr(cfg.scene, scene_model.articulation)
        robot = Articulation(self.sim, self.device,
                             _resolve_joint_values(robot_cfg.init_state.joint_pos, self.sim.joint_names),
                             robot_cfg.init_state.pos, actuator_velocity_limits(robot_cfg.actuators, self.sim.joint_names))
        apply_actuator_cfg(robot, robot_cfg.actuators)
        self._robot = robot
        objects = {name: RigidObject(self.sim, name, self.device, getattr(cfg.scene, name).init_state)
                   for name in scene_model.objects}
        self.scene = InteractiveScene({scene_model.articulation: robot}, objects, self.num_envs, self.device)

        self._episode_length_buf = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self._step_counter = np.zeros(1, dtype=np.int64)
        self.reset_buf = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self.extras: dict[str, Any] = {"log": {}}
        self.sim_diverged_count = 0
        self.fused_managers = bool(physics.fused_managers)
        """Read by the managers: compose their terms' fused forms (``embedded/managers/fused.py``)."""

        self.event_manager = EventManager(cfg.events, self)
        self.command_manager = CommandManager(cfg.commands, self)
        self.action_manager = ActionManager(cfg.actions, self)
        self.observation_manager = ObservationManager(cfg.observations, self)
        self.termination_manager = TerminationManager(cfg.terminations, self)
        self.reward_manager = RewardManager(cfg.rewards, self)
        self.curriculum_manager = CurriculumManager(cfg.curriculum, self)
        self.event_manager.apply("startup")  # env_ids None: every environment

        n_obs = self.observation_manager.group_obs_dim["policy"][0]
        self.single_observation_space = gym.spaces.Dict(
            {"policy": gym.spaces.Box(-np.inf, np.inf, shape=(n_obs,), dtype=np.float32)})
        self.single_action_space = gym.spaces.Box(-np.inf, np.inf, shape=(self.action_manager.total_action_dim,),
                                                  dtype=np.float32)
        self.obs_buf: dict[str, torch.Tensor] = {}

    @property
    def common_step_counter(self) -> int:
        """Control steps since the start (curricula read it); kept in a host array the fused terms view."""
        return int(self._step_counter[0])

    @common_step_counter.setter
    def common_step_counter(self, value: int) -> None:
        self._step_counter[0] = value

    @property
    def episode_length_buf(self) -> torch.Tensor:
        """Steps into each environment's episode: one buffer for the env's life (the fused terms hold a view)."""
        return self._episode_length_buf

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        # rsl_rl's random episode starts assign a new tensor: copied in, so every reader sees the same buffer
        self._episode_length_buf.copy_(value)

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
        # Servo targets are constant over the control period, so all substeps run in one native call.
        self.action_manager.apply_action()
        self._robot.write_data_to_sim()
        diverged = torch.from_numpy(self.sim.step(self.cfg.decimation)).to(self.device)
        self.scene.update(self.step_dt)

        self._episode_length_buf += 1  # the buffers themselves: the properties' setters copy
        self._step_counter[0] += 1
        self.termination_manager.compute()
        reset_terminated = self.termination_manager.terminated | diverged
        self.reset_buf = reset_terminated | self.termination_manager.time_outs
        reward = self.reward_manager.compute(dt=self.step_dt)

        reset_ids = self.reset_buf.nonzero(as_tuple=False).flatten()
        if len(reset_ids) > 0:
            if self.cfg.compute_final_obs:
                self.extras["final_obs"] = self.observation_manager.compute()
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
        """Isaac Lab's order: curriculum, reset events (they place the robot), then each manager's reset."""
        self.curriculum_manager.compute(env_ids)
        self.event_manager.apply("reset", env_ids)
        self.extras["log"] = log = {}
        for manager in (self.observation_manager, self.action_manager, self.reward_manager, self.curriculum_manager,
                        self.command_manager, self.event_manager, self.termination_manager):
            log.update(manager.reset(env_ids))
        self.episode_length_buf[env_ids] = 0

    def close(self) -> None:
        pass
