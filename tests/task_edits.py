"""Config edits the runtime tests share: switch randomization off, drive the joints directly."""

from __future__ import annotations


def only_events(*keep: str):
    """An edit that switches every event term off except ``keep`` (and zeroes the start-pose spread)."""
    def edit(cfg):
        for name in [f for f in vars(cfg.events) if not f.startswith("_")]:
            if name not in keep and name != "reset_robot_joints":
                setattr(cfg.events, name, None)
        if "reset_robot_joints" not in keep:
            cfg.events.reset_robot_joints.params["position_range"] = (0.0, 0.0)
        cfg.curriculum = None
    return edit


def raw_servo(cfg):
    """Absolute joint targets straight to the drive (no latency, slew or step limit): the physics alone."""
    only_events()(cfg)
    action = cfg.actions.arm_action
    action.mode, action.scale, action.max_step, action.servo_speed = "absolute", 1.0, None, None
    action.latency_steps = 0
