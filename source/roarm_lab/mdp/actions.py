"""The arm's action term: the servos. Joint targets clamped to the safe box, delayed, slewed, miscalibrated."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from roarm_lab.isaaclab_api import ActionTerm, ActionTermCfg, MISSING, configclass
from roarm_lab.policy.targets import clamp_targets, desired_targets


class ServoJointPositionAction(ActionTerm):
    """Joint position targets for the servos, clamped to the safe joint box, sent after ``latency`` steps.

    ``mode="relative"`` (the reach task's choice): ``target_t = clamp(target_{t-1} + scale * action)``,
    starting from the measured joint positions at reset. The target integrates the policy's output, so a
    heavier-than-modelled arm's sag is removed by the loop (integral action) instead of by memorised
    offsets; zero action holds the pose. ``mode="absolute"``: ``target = clamp(offset + scale * action)``.
    Either way the bridge to the real arm applies the convention exported in ``policy.json``.

    Between the policy and the joint, the term models the servo firmware (``ROARM_M3.md``): the target
    changes by at most ``max_step`` per control step (exported; the bridge applies the same), reaches the
    servo ``latency`` steps later, and the servo's own setpoint slews toward it at ``servo_speed`` rad/s and
    stops within ``servo_deadband``. A policy trained on a servo that jumps to its target overshoots and
    circles on an arm that moves at 1.5 to 2 rad/s.

    The servo's zero can be off by a ``calibration_offset`` (set per episode by an event): the servo drives
    the joint to ``setpoint + offset`` and reads ``q - offset``. That is where the error lives on the real arm,
    so it is modelled here, in the servo's command and reading, and works on every runtime (no physics
    engine has such a parameter). Observations of the joints go through ``measured_joint_pos``.
    """

    cfg: "ServoJointPositionActionCfg"

    def __init__(self, cfg: "ServoJointPositionActionCfg", env: Any):
        super().__init__(cfg, env)
        if cfg.mode not in ("relative", "absolute"):
            raise ValueError(f"action mode '{cfg.mode}' is not one of ['relative', 'absolute']")
        self._joint_ids, self._joint_names = self._asset.find_joints(cfg.joint_names, preserve_order=True)
        n, k = env.num_envs, len(self._joint_ids)
        dev = env.device
        self._scale = torch.tensor([cfg.scale[j] if isinstance(cfg.scale, dict) else cfg.scale
                                    for j in self._joint_names], device=dev)
        data = self._asset.data
        self._home = data.default_joint_pos.torch[:, self._joint_ids].clone()
        self._offset = self._home.clone() if cfg.use_default_offset else torch.zeros(n, k, device=dev)
        limits = data.soft_joint_pos_limits.torch[0, self._joint_ids]
        self._lower, self._upper = limits[:, 0].clone(), limits[:, 1].clone()
        self._calibration = torch.zeros(n, k, device=dev)
        self._raw = torch.zeros(n, k, device=dev)
        self._processed = self._offset.clone()
        # the last max_latency_steps + 1 targets, a ring: slot ``_head`` holds the newest (no copy per step)
        self._history = self._offset.unsqueeze(1).repeat(1, cfg.max_latency_steps + 1, 1)
        self._head_slot = np.zeros(1, dtype=np.int64)  # host-side, as the int it is; fused readers view it
        if not 0 <= cfg.latency_steps <= cfg.max_latency_steps:
            raise ValueError(f"{type(self).__name__}: latency_steps={cfg.latency_steps} must lie in 0..max_latency_steps "
                             f"({cfg.max_latency_steps}); raise max_latency_steps or lower it")
        self._latency = torch.full((n,), cfg.latency_steps, dtype=torch.long, device=dev)
        self._rows = torch.arange(n, device=dev)
        ids = self._joint_ids  # a contiguous run of joints reads as a view, not a gather
        contiguous = ids == list(range(ids[0], ids[0] + len(ids)))
        self._cols = slice(ids[0], ids[0] + len(ids)) if contiguous else ids
        self._setpoint = self._offset.clone()
        # Isaac Lab applies once per physics step, unless its backend runs all substeps in one call (the
        # embedded runtime does): then once per control step.
        once = getattr(env, "_physics_handles_decimation", False)
        self._apply_dt = float(env.physics_dt * (env.cfg.decimation if once else 1))
        speed = float("inf") if cfg.servo_speed is None else cfg.servo_speed
        self._speed = torch.full((n, k), speed, device=dev)

    @property
    def _head(self) -> int:
        """The ring's slot of the newest target."""
        return int(self._head_slot[0])

    @property
    def action_dim(self) -> int:
        return len(self._joint_ids)

    @property
    def joint_names(self) -> list[str]:
        return list(self._joint_names)

    @property
    def joint_ids(self) -> list[int]:
        """The action joints' indices in the articulation, in the action's order."""
        return list(self._joint_ids)

    @property
    def raw_actions(self) -> torch.Tensor:
        return self._raw

    @property
    def processed_actions(self) -> torch.Tensor:
        return self._processed

    @property
    def scale(self) -> torch.Tensor:
        return self._scale

    @property
    def offset(self) -> torch.Tensor:
        return self._offset[0]

    @property
    def mode(self) -> str:
        return self.cfg.mode

    @property
    def limits(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._lower, self._upper

    @property
    def default_joint_pos(self) -> torch.Tensor:
        """Home of the action joints, (num_envs, action_dim) (rad)."""
        return self._home

    @property
    def measured_joint_pos(self) -> torch.Tensor:
        """What the servos read: the joint positions minus each servo's calibration error (rad)."""
        return self._asset.data.joint_pos.torch[:, self._cols] - self._calibration

    @property
    def calibration_offset(self) -> torch.Tensor:
        return self._calibration

    def set_calibration_offset(self, offset: torch.Tensor, env_ids: torch.Tensor) -> None:
        """Per-environment, per-joint servo zero error (rad): the joint settles at target + offset."""
        self._calibration[env_ids] = offset

    def set_latency(self, steps: torch.Tensor, env_ids: torch.Tensor) -> None:
        if int(steps.max()) > self.cfg.max_latency_steps:
            raise ValueError(f"latency {int(steps.max())} exceeds max_latency_steps={self.cfg.max_latency_steps}")
        self._latency[env_ids] = steps

    @property
    def commanded_targets(self) -> torch.Tensor:
        """The newest targets (before the latency and the servo's slew): what the bridge last sent."""
        return self._history[:, self._head]

    @property
    def max_step(self) -> float | None:
        return self.cfg.max_step

    def set_servo_speed(self, speed: torch.Tensor, env_ids: torch.Tensor) -> None:
        """Per-environment, per-joint setpoint speed (rad/s) of the servos."""
        if bool((speed <= 0).any()):
            raise ValueError("servo speed must be positive (rad/s)")
        self._speed[env_ids] = speed

    def _policy_targets(self, actions: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """The joint targets the policy's actions ask for, before the safe box and the step limit."""
        return desired_targets(actions, previous, self._offset, self._scale, self.cfg.mode == "relative")

    def process_actions(self, actions: torch.Tensor) -> None:
        self._raw.copy_(actions)
        previous = self._history[:, self._head]
        target = clamp_targets(self._policy_targets(actions, previous), previous, self._lower, self._upper,
                               self.cfg.max_step)
        slots = self._history.shape[1]
        head = (self._head + 1) % slots
        self._head_slot[0] = head
        self._history[:, head] = target
        self._processed.copy_(self._history[self._rows, (head - self._latency) % slots])

    def apply_actions(self) -> None:
        # the servo's setpoint slews toward the (delayed) target; inside the deadband it does not move
        diff = self._processed - self._setpoint
        reach = self._speed * self._apply_dt
        move = torch.clamp(diff, -reach, reach)
        self._setpoint += torch.where(diff.abs() <= self.cfg.servo_deadband, torch.zeros_like(move), move)
        self._asset.actuators.target_command.set_position_index(value=self._setpoint + self._calibration,
                                                                joint_ids=self._joint_ids)

    def reset(self, env_ids: Any = None) -> None:
        ids = slice(None) if env_ids is None else env_ids
        self._raw[ids] = 0.0
        # relative mode starts from where the servos read the arm (the reset event has already placed it)
        start = self.measured_joint_pos[ids] if self.cfg.mode == "relative" else self._offset[ids]
        self._history[ids] = start.unsqueeze(1)
        self._processed[ids] = start
        self._setpoint[ids] = start


@configclass
class ServoJointPositionActionCfg(ActionTermCfg):
    class_type: type = ServoJointPositionAction
    joint_names: list[str] = MISSING
    scale: float | dict[str, float] = 1.0
    use_default_offset: bool = True
    mode: str = "relative"
    """"relative" (target integrates scale * action) or "absolute" (target = offset + scale * action)."""
    max_latency_steps: int = 2
    latency_steps: int = 0
    """The delay (control steps) while no event draws one: a task sets the arm's nominal (``physics.SERVO_LATENCY_STEPS``),
    so a nominal evaluation, which drops the randomization, runs the arm the policy was trained around."""
    max_step: float | None = None
    """Largest change of the target per control step (rad); None: unlimited. Exported to policy.json."""
    servo_speed: float | None = None
    """Nominal setpoint speed of the servos (rad/s); None: the setpoint jumps to the target."""
    servo_deadband: float = 0.0
    """The servo setpoint does not move while within this distance of the target (rad)."""


class BinaryServoGripperAction(ServoJointPositionAction):
    """Open or close the gripper, as Isaac Lab's ``BinaryJointPositionAction``: a negative action closes.

    The command goes through the same servo model as the arm's (latency, slew, deadband, calibration), and the
    gripper servo's torque limit (``joint_table.GRIP_TORQUE_NM``) is what holds an object: closing on a cube
    stalls the jaw against it. Binary rather than a continuous position: the policy has one decision to make,
    when to close, and the stalled servo sets the grip, not the policy.
    """

    cfg: "BinaryServoGripperActionCfg"

    def __init__(self, cfg: "BinaryServoGripperActionCfg", env: Any):
        super().__init__(cfg, env)
        self._open = torch.tensor([cfg.open_command_expr[n] for n in self._joint_names], device=env.device)
        self._close = torch.tensor([cfg.close_command_expr[n] for n in self._joint_names], device=env.device)
        self._raw = torch.zeros(env.num_envs, 1, device=env.device)

    @property
    def action_dim(self) -> int:
        return 1

    @property
    def closing(self) -> torch.Tensor:
        """(num_envs,) bool: the last command was to close."""
        return self._raw[:, 0] < 0

    def _policy_targets(self, actions: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return torch.where(actions[:, :1] < 0, self._close, self._open)


@configclass
class BinaryServoGripperActionCfg(ServoJointPositionActionCfg):
    class_type: type = BinaryServoGripperAction
    mode: str = "absolute"
    open_command_expr: dict[str, float] = MISSING
    """Joint positions (rad) of the open gripper, by joint name."""
    close_command_expr: dict[str, float] = MISSING
    """Joint positions (rad) of the closed gripper (an object in the jaws stops them earlier)."""
