"""One interactive environment of a task and the operations of the control protocol on it.

Runtime-neutral: the environment is built through the registry and read only through the manager-based API
(``env.scene["robot"].data``, ``env.action_manager``, ``env.command_manager.get_term``,
``env.observation_manager``), so the same operations can run inside Isaac Sim. The environment uses the
task's evaluation configuration (nominal arm unless ``randomize``, no target resampling) with a one-day
episode, so it never resets by itself.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch

from roarm_lab.isaaclab_api import RUNTIME
from roarm_lab.mdp.observations import hand_position_b
from roarm_lab.policy.spec import observation_layout
from roarm_lab.rl.evaluate import observation_term_slice
from roarm_lab.sim_service.controllers import PolicyRun, RawAction, action_toward
from roarm_lab.sim_service.policies import ActionSource, layout_mismatch
from roarm_lab.sim_service.protocol import ProtocolError, SimErrorCode
from roarm_lab.sim_service.workspace import task_workspace

INTERACTIVE_EPISODE_S = 24 * 3600.0
MAX_RECORD_ENVS = 16


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float64).copy()


def _list(x: Any) -> list[float]:
    return [float(v) for v in np.asarray(x).reshape(-1)]


def evaluation_config(task: str, overrides: list[str], randomize: bool) -> tuple[Any, list[str]]:
    """The task's env config with overrides (the project's parser) in its own evaluation mode, as play.py does."""
    from roarm_lab.rl.run_setup import load_task_configs

    env_cfg, _, applied = load_task_configs(task, overrides)
    if not callable(getattr(env_cfg, "evaluation_mode", None)):
        raise ValueError(f"task '{task}' has no evaluation_mode(randomize) in its env config; the simulator needs "
                         "one (held-out targets, no resampling)")
    env_cfg.evaluation_mode(randomize=randomize)
    physics = env_cfg.sim.physics
    if physics is not None and hasattr(physics, "nthread"):
        physics.nthread = 1  # one environment: threads only cost
    return env_cfg, applied


class SimSession:
    def __init__(self, task: str, *, seed: int = 0, randomize: bool = False, overrides: list[str] | None = None,
                 realtime: bool = False, viewer: bool = False):
        from roarm_lab.registry import make_env

        self.task, self.seed, self.randomize, self.realtime = task, seed, randomize, realtime
        self.overrides = list(overrides or [])
        cfg, self.applied = evaluation_config(task, self.overrides, randomize)
        cfg.scene.num_envs = 1
        cfg.seed = seed
        cfg.episode_length_s = INTERACTIVE_EPISODE_S
        self.env = make_env(task, cfg)
        self.robot = self.env.scene["robot"]
        from roarm_lab.registry import task_profile

        self.profile = task_profile(task)
        am = self.env.action_manager
        self.term = am.get_term(self.profile.arm_action)
        """The arm's action term: goals and joint moves drive it; the task's other terms (a gripper) get zeros."""
        start = 0
        for name in am.active_terms:
            if name == self.profile.arm_action:
                break
            start += am.get_term(name).action_dim
        self._arm = slice(start, start + self.term.action_dim)
        self.command = self.env.command_manager.get_term(self.profile.command)
        self._hand = self.robot.find_bodies(self.profile.hand_frame)[0][0]
        bound = next(b for b in self.profile.success if b.measure == self.profile.primary.name)
        self.threshold_m = float(getattr(self.command.cfg, bound.threshold))
        self._measure_slices = {m.name: observation_term_slice(self.env, self.profile.group, m.term) for m in self.profile.measures}
        self.dt = float(self.env.step_dt)
        self.workspace = task_workspace(task)
        self.steps = 0
        self.resets = 0
        self.goal: np.ndarray | None = None
        self.controller: RawAction | PolicyRun | None = None
        self.last_run: dict[str, Any] | None = None
        self.background = False
        """A stepped (not real-time) policy run that the service loop ticks between requests."""
        self.runs_started = 0
        self._renderer: Any = None
        self._obs = self.env.reset()[0]
        self.viewer = None
        if viewer:
            from roarm_lab.sim_service.render import SceneViewer

            self.viewer = SceneViewer()

    # ------------------------------------------------------------------ description
    @property
    def action_size(self) -> int:
        return int(self.env.action_manager.total_action_dim)

    def layout(self, group: str = "policy") -> list[dict[str, Any]]:
        return observation_layout(self.env, group)

    def spec(self) -> dict[str, Any]:
        lower, upper = self.term.limits
        return {
            "task": self.task, "runtime": RUNTIME, "realtime": self.realtime,
            "seed": self.seed, "randomize": self.randomize, "overrides": self.applied,
            "control_period_s": self.dt, "joint_names": list(self.robot.joint_names),
            "action": {"joint_names": list(self.term.joint_names), "size": self.action_size, "mode": self.term.mode,
                       "scale": _list(_np(self.term.scale)), "lower": _list(_np(lower)), "upper": _list(_np(upper)),
                       "terms": [{"name": n, "size": int(self.env.action_manager.get_term(n).action_dim)}
                                 for n in self.env.action_manager.active_terms]},
            "measures": [{"name": m.name, "label": m.label, "unit": m.unit} for m in self.profile.measures],
            "success": self.profile.success_text,
            "observation": {g: self.layout(g) for g in self.env.observation_manager.active_terms},
            "success_threshold_m": self.threshold_m,
        }

    # ------------------------------------------------------------------ state
    def hand_b(self) -> np.ndarray:
        return _np(hand_position_b(self.robot, self._hand)[0])

    def target_b(self) -> np.ndarray:
        return _np(self.command.command[0, :3])

    def measures(self) -> dict[str, float]:
        """The task's measures now (its profile's: hand error for reach; goal error, cube height for lift)."""
        group = self.env.observation_manager.compute_group(self.profile.group)
        return {m.name: float(m.read(group, self._measure_slices[m.name])[0]) for m in self.profile.measures}

    def error_m(self) -> float:
        """The task's primary measure now (m)."""
        return self.measures()[self.profile.primary.name]

    def succeeded(self, measures: dict[str, float]) -> bool:
        values = {k: torch.tensor([v]) for k, v in measures.items()}
        return bool(self.profile.succeeded(values, self.command.cfg)[0])

    def joint_state(self) -> dict[str, Any]:
        data = self.robot.data
        lower, upper = self.term.limits
        measures = self.measures()
        error = measures[self.profile.primary.name]
        return {
            "step": self.steps, "sim_time_s": self.steps * self.dt, "resets": self.resets,
            "joint_names": list(self.robot.joint_names),
            "joint_pos": _list(_np(data.joint_pos.torch[0])), "joint_vel": _list(_np(data.joint_vel.torch[0])),
            "arm": {"joint_names": list(self.term.joint_names),
                    "measured": _list(_np(self.term.measured_joint_pos[0])),
                    "commanded": _list(_np(self.term.commanded_targets[0])),
                    "goal": None if self.goal is None else _list(self.goal),
                    "lower": _list(_np(lower)), "upper": _list(_np(upper))},
            "hand_b": _list(self.hand_b()), "target_b": _list(self.target_b()), "error_m": error,
            "within_threshold": self.succeeded(measures), "threshold_m": self.threshold_m,
            "measures": measures,
            "controller": None if self.controller is None else self.controller.status(),
        }

    def observation(self) -> dict[str, Any]:
        """Every observation group now, as named terms (layout as in policy.json) and as the flat vector."""
        manager = self.env.observation_manager
        out = {}
        for group in manager.active_terms:
            values = _np(manager.compute_group(group)[0])
            layout = self.layout(group)
            out[group] = {"layout": layout, "vector": _list(values),
                          "terms": {t["name"]: _list(values[t["start"]:t["stop"]]) for t in layout}}
        return out

    # ------------------------------------------------------------------ commands
    def _refuse_if_running(self, what: str) -> None:
        if isinstance(self.controller, PolicyRun) and not self.controller.done:
            raise ProtocolError(SimErrorCode.BUSY, f"a policy run is in progress; stop it (stop_policy) before {what}")

    def reset(self, target: np.ndarray | None = None) -> dict[str, Any]:
        self.stop_policy("reset")
        self.controller, self.goal = None, None
        self._obs = self.env.reset()[0]
        self.resets += 1
        if target is not None:
            self.set_target(target)
        return self.joint_state()

    def set_target(self, target: np.ndarray) -> dict[str, Any]:
        """Move the hand target (base frame, m); refused if the arm cannot reach it."""
        target = np.asarray(target, dtype=np.float64).reshape(3)
        if not self.workspace.check(target).ok:
            raise ProtocolError(SimErrorCode.UNREACHABLE, self.workspace.describe(target))
        self.command.command[0, :3] = torch.as_tensor(target, dtype=self.command.command.dtype)
        self._obs = self.env.observation_manager.compute()  # the observation now shows the new target
        return self.joint_state()

    def set_joint_targets(self, values: np.ndarray) -> dict[str, Any]:
        """Hold the arm joints at these positions (rad, action-joint order), clamped to the joint box."""
        self._refuse_if_running("setting joint targets")
        lower, upper = (_np(v) for v in self.term.limits)
        goal = np.clip(values, lower, upper)
        self.goal, self.controller = goal, None
        state = self.joint_state()
        state["requested"] = _list(values)
        state["clamped"] = [bool(c) for c in np.abs(goal - values) > 1e-12]
        return state

    def act(self, action: np.ndarray, steps: int) -> dict[str, Any]:
        """Apply a raw policy action (the task's action units) for ``steps`` control steps."""
        self._refuse_if_running("applying an action")
        self.goal, self.controller = None, RawAction(np.asarray(action, np.float32), steps)
        if not self.realtime:
            self._run_controller()
        return self.joint_state()

    def step(self, count: int) -> dict[str, Any]:
        if self.realtime:
            raise ProtocolError(SimErrorCode.REALTIME, "this simulator runs in real time and steps itself; start it "
                                "with realtime=false to step it by hand")
        for _ in range(count):
            self.tick()
        return self.joint_state()

    # ------------------------------------------------------------------ policy
    def check_layout(self, source: ActionSource, layout: list[dict[str, Any]] | None = None) -> None:
        wrong = layout_mismatch(source.terms, layout or self.layout())
        if wrong:
            source.close()
            raise ProtocolError(SimErrorCode.POLICY_FAILED, wrong + ": export a policy of this task and configuration")

    def run_policy(self, source: ActionSource, target: np.ndarray | None, max_steps: int,
                   until_reached: bool, background: bool = False) -> dict[str, Any]:
        """Closed loop from the current state. In real time the clock ticks it; stepped, it runs to the end here,
        or (``background``) the service loop ticks it between requests as fast as it can, so it can be watched
        and stopped."""
        self._refuse_if_running("starting another")
        self.check_layout(source)
        if target is not None:
            try:
                self.set_target(target)
            except ProtocolError:
                source.close()
                raise
        self.goal = None
        self.runs_started += 1
        run_id = f"simrun-{self.runs_started}-{secrets.token_hex(2)}"
        self.controller = PolicyRun(source, run_id, max_steps, until_reached, self.threshold_m, _list(self.target_b()))
        self.background = background and not self.realtime
        if not self.realtime and not background:
            self._run_controller()
        return self.policy_status()

    def stepping_in_background(self) -> bool:
        return self.background and isinstance(self.controller, PolicyRun) and not self.controller.done

    def policy_status(self) -> dict[str, Any]:
        if isinstance(self.controller, PolicyRun):
            return self.controller.status()
        return self.last_run or {"kind": "policy", "done": True, "stopped": None, "steps": 0}

    def stop_policy(self, why: str = "stopped", run_id: str | None = None) -> dict[str, Any]:
        """End the running policy (only if it is ``run_id``, when given); the status of the run named."""
        if run_id is not None and not (isinstance(self.controller, PolicyRun) and self.controller.run_id == run_id):
            if self.last_run and self.last_run.get("run_id") == run_id:
                return self.last_run
            raise ProtocolError(SimErrorCode.BAD_REQUEST, f"no policy run '{run_id}' in this simulator")
        if isinstance(self.controller, PolicyRun):
            self.controller.finish(why)
            self.last_run = self.controller.status()
            self.controller = None
        return self.policy_status()

    def record(self, source: ActionSource, episodes: int, randomize: bool, out_dir: Path) -> dict[str, Any]:
        """Held-out episodes with ``evaluate`` (play.py's rollout format: episode_XXXXX.npz + meta.json) on a
        separate batch of the task's evaluation environments; the interactive one is left as it is."""
        from roarm_lab.registry import make_env
        from roarm_lab.rl.evaluate import evaluate

        cfg, _ = evaluation_config(self.task, self.overrides, randomize)
        cfg.scene.num_envs = min(episodes, MAX_RECORD_ENVS)
        cfg.seed = self.seed
        env = make_env(self.task, cfg)
        try:
            self.check_layout(source, observation_layout(env))
            metrics, _ = evaluate(env, source.batched(), episodes, record_dir=out_dir, task=self.task,
                                  show_progress=False)
        finally:
            env.close()
            source.close()
        return {"dir": str(out_dir), "episodes": metrics["episodes"], "metrics": metrics,
                "files": len(list(out_dir.iterdir()))}

    def film(self, source: ActionSource, target: np.ndarray | None, steps: int, frames: int, camera: str,
             width: int, height: int) -> dict[str, Any]:
        """Run a policy for ``steps`` stepped control steps from the current state and render ``frames`` evenly
        spaced pictures of it (the first before the first step). The interactive arm ends where the policy left
        it, as after run_policy."""
        if self.realtime:
            source.close()
            raise ProtocolError(SimErrorCode.REALTIME, "a filmed rollout steps the simulation by hand; start the "
                                "simulator with realtime=false")
        self.run_policy(source, target, steps, until_reached=False, background=True)
        run = self.controller
        every = max(1, -(-steps // max(1, frames - 1)))
        try:
            images = [self.render(camera, width, height)]
            errors = [self.error_m()]
            while self.stepping_in_background():
                self.tick()
                if run.steps % every == 0 or run.done:
                    images.append(self.render(camera, width, height))
                    errors.append(self.error_m())
        except BaseException:  # a failed picture ends the run here: nothing keeps moving after the error
            self.stop_policy("film failed")
            raise
        finally:
            self.background = False
        return {"frames": images, "errors_m": errors, "every_steps": every, "policy": run.status()}

    # ------------------------------------------------------------------ stepping
    def tick(self) -> None:
        """One control step with the active controller's action (zero action holds a relative-action arm)."""
        size = self.action_size
        c = self.controller
        if isinstance(c, PolicyRun) and not c.done:
            action = c.next(_np(self._obs["policy"][0]).astype(np.float32), size)
        elif isinstance(c, RawAction) and not c.done:
            action = c.next()
        elif self.goal is not None:
            action = np.zeros(size, np.float32)
            action[self._arm] = action_toward(self.goal, _np(self.term.commanded_targets[0]), _np(self.term.offset),
                                              _np(self.term.scale), self.term.mode == "relative")
        else:
            action = np.zeros(size, np.float32)
        obs, _, terminated, truncated, _ = self.env.step(torch.as_tensor(action, dtype=torch.float32).reshape(1, -1))
        self._obs = obs
        self.steps += 1
        if bool((terminated | truncated).any()):  # a diverged simulation was reset: nothing is held any more
            self.resets += 1
            self.goal = None
        if isinstance(c, PolicyRun) and not c.done:
            measures = self.measures()
            c.observe(measures[self.profile.primary.name], self.succeeded(measures))
        if c is not None and c.done:
            if isinstance(c, PolicyRun):
                self.last_run = c.status()
            self.controller = None

    def _run_controller(self) -> None:
        while self.controller is not None:  # tick drops a controller once it is done
            self.tick()

    # ------------------------------------------------------------------ images
    def _scene(self) -> tuple[list[str], np.ndarray, np.ndarray, list[Any]]:
        """What a picture shows: the arm's joints, the goal (world) and the scene's objects where they are."""
        from roarm_lab.sim_service.render import SceneObject

        data = self.robot.data
        origin = _np(self.env.scene.env_origins[0])
        objects = []
        for name, obj in self.env.scene.rigid_objects.items():
            spawn = getattr(self.env.cfg.scene, name).spawn
            colour = spawn.visual_material.diffuse_color if spawn.visual_material is not None else (0.6, 0.6, 0.6)
            objects.append(SceneObject(tuple(v / 2 for v in spawn.size),
                                       tuple(_np(obj.data.root_pos_w.torch[0]) - origin),
                                       tuple(_np(obj.data.root_quat_w.torch[0])), (*colour, 1.0)))
        return (list(self.robot.joint_names), _np(data.joint_pos.torch[0]),
                self.target_b() + _np(data.root_pos_w.torch[0]) - origin, objects)

    def render(self, camera: str, width: int, height: int) -> bytes:
        from roarm_lab.sim_service.render import SceneRenderer

        if self._renderer is None or (self._renderer.width, self._renderer.height) != (width, height):
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = SceneRenderer(width, height)
        return self._renderer.render(camera, *self._scene())

    def refresh_view(self) -> None:
        """Show the current state in the viewer window, if there is one (at most 30 times a second)."""
        if self.viewer is not None:
            self.viewer.sync(*self._scene())

    def close(self) -> None:
        self.stop_policy("closed")
        for view in (self._renderer, self.viewer):
            if view is not None:
                view.close()
        self._renderer = self.viewer = None
        self.env.close()
