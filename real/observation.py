"""The task's own policy observation, evaluated on the real arm's feedback (no second implementation).

The bridge builds the task's ``ObservationManager`` over a one-environment view whose ``scene``,
``command_manager`` and ``action_manager`` are filled from the newest T:1051 frame, the current target
and the last action. The action manager's one term stands in for the servo model: its readings are the
arm's (already calibrated) joint feedback. The term functions are the ones the simulator trained with;
only noise is off.
The layout is checked against ``policy.json`` so an export from another task version is refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from roarm_lab.assets.joint_table import BASE_HEIGHT_M, JOINTS, TCP_FRAME
from roarm_lab.registry import load_cfg_from_registry, task_profile
from roarm_lab.embedded.articulation import TorchArray, _find
from roarm_lab.embedded.managers.observation import ObservationManager


class _ArmData:
    def __init__(self, default_joint_pos: np.ndarray):
        f32 = dict(dtype=torch.float32)
        self.joint_pos = TorchArray(torch.as_tensor(default_joint_pos, **f32).reshape(1, -1).clone())
        self.default_joint_pos = TorchArray(self.joint_pos.torch.clone())
        self.root_pos_w = TorchArray(torch.tensor([[0.0, 0.0, BASE_HEIGHT_M]], **f32))
        self.body_pos_w = TorchArray(torch.zeros(1, 1, 3, **f32))


class _Arm:
    """What the terms read of ``env.scene["robot"]``: names, id lookup, and ``data``."""

    joint_names = [j.name for j in JOINTS]
    body_names = [TCP_FRAME]  # the arm reports one Cartesian point: the hand

    def __init__(self, default_joint_pos: np.ndarray):
        self.data = _ArmData(default_joint_pos)
        self.num_joints = len(self.joint_names)

    def find_joints(self, keys: Any, preserve_order: bool = False) -> tuple[list[int], list[str]]:
        return _find(self.joint_names, keys, preserve_order, "joint")

    def find_bodies(self, keys: Any, preserve_order: bool = False) -> tuple[list[int], list[str]]:
        return _find(self.body_names, keys, preserve_order, "body (the real arm reports only the hand)")


class _Commands:
    def __init__(self) -> None:
        self.target = torch.zeros(1, 3)

    def get_command(self, name: str) -> torch.Tensor:
        return self.target


class _Actions:
    """The action manager and its one (servo) term, as the terms read them: last action, commanded targets,
    the servos' readings and their home."""

    def __init__(self, home: np.ndarray) -> None:
        size = len(home)
        self.action = torch.zeros(1, size)
        self.commanded_targets = torch.zeros(1, size)
        self.measured_joint_pos = torch.as_tensor(home, dtype=torch.float32).reshape(1, -1).clone()
        self.default_joint_pos = self.measured_joint_pos.clone()

    @property
    def raw_actions(self) -> torch.Tensor:
        return self.action

    def get_term(self, name: str) -> "_Actions":
        return self


class ArmView:
    """A one-environment stand-in for ``ManagerBasedRLEnv`` as observation terms see it."""

    num_envs = 1
    device = "cpu"

    def __init__(self, step_dt: float, default_joint_pos: np.ndarray, action_ids: list[int]):
        self.step_dt = step_dt
        self.common_step_counter = 0
        self.scene = {"robot": _Arm(default_joint_pos)}
        self.command_manager = _Commands()
        self.action_manager = _Actions(default_joint_pos[action_ids])


class ArmObservation:
    """``obs = ArmObservation(meta)(q, hand_base_m, target_base_m, last_action, commanded)``: the policy's input."""

    def __init__(self, meta: dict[str, Any]):
        env_cfg = load_cfg_from_registry(meta["task"], "env_cfg_entry_point")
        profile = task_profile(meta["task"])
        bound = next(b for b in profile.success if b.measure == profile.primary.name)
        self.success_threshold_m = float(getattr(getattr(env_cfg.commands, profile.command), bound.threshold))
        """The task's own success radius (the command config states it once; the profile says which field)."""
        group = getattr(env_cfg.observations, meta["observation"]["group"])
        group.enable_corruption = False  # noise is the simulator's model of the arm; the arm brings its own
        cfg_cls = dataclasses.make_dataclass("ArmObservationsCfg", [("policy", type(group),
                                                                      dataclasses.field(default_factory=lambda: group))])
        default = np.array([meta["default_joint_pos"][j.name] for j in JOINTS])
        names = [j.name for j in JOINTS]
        self._action_ids = [names.index(n) for n in meta["action"]["joint_names"]]
        self.view = ArmView(float(meta["control_period_s"]), default, self._action_ids)
        self.manager = ObservationManager(cfg_cls(), self.view)
        layout = [(n, d[0]) for n, d in zip(self.manager.active_terms["policy"], self.manager.group_obs_term_dim["policy"])]
        exported = [(t["name"], t["size"]) for t in meta["observation"]["terms"]]
        if layout != exported:
            raise ValueError(f"policy.json's observation layout {exported} differs from task {meta['task']}'s "
                             f"{layout}: export the policy again with this version (scripts/play.py)")
        self.size = int(meta["observation"]["size"])
        self._absolute_start = None if meta["action"].get("mode") == "relative" else np.asarray(meta["action"]["offset"])
        self.reset()  # building the manager evaluated every term once

    def reset(self) -> None:
        """Start of a run or after a feedback gap: the finite-difference velocity restarts at zero."""
        self.manager.reset(torch.tensor([0]))

    def __call__(self, q: np.ndarray, hand_base_m: np.ndarray, target_base_m: np.ndarray,
                 last_action: np.ndarray, commanded: np.ndarray | None = None) -> np.ndarray:
        """``commanded``: the action joints' last sent targets (true rad); None before the first command, when
        the simulator's action term starts from the measured pose (relative) or the offset (absolute)."""
        view = self.view
        data = view.scene["robot"].data
        data.joint_pos.torch[0] = torch.as_tensor(q, dtype=torch.float32)
        data.body_pos_w.torch[0, 0] = torch.as_tensor(hand_base_m, dtype=torch.float32) + data.root_pos_w.torch[0]
        view.command_manager.target[0] = torch.as_tensor(target_base_m, dtype=torch.float32)
        actions = view.action_manager
        actions.action[0] = torch.as_tensor(last_action, dtype=torch.float32)
        actions.measured_joint_pos[0] = data.joint_pos.torch[0, self._action_ids]
        if commanded is None:
            commanded = np.asarray(q)[self._action_ids] if self._absolute_start is None else self._absolute_start
        actions.commanded_targets[0] = torch.as_tensor(commanded, dtype=torch.float32)
        view.common_step_counter += 1  # one control step per call: the finite-difference velocity advances
        return self.manager.compute_group("policy")[0].numpy().astype(np.float32)
