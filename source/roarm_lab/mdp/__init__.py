"""MDP terms of RoArm tasks: small functions (and a few stateful classes) named by the task configs."""

from roarm_lab.mdp.actions import ServoJointPositionAction, ServoJointPositionActionCfg
from roarm_lab.mdp.commands import ReachableTargetCommand, ReachableTargetCommandCfg, reachable_target_bank
from roarm_lab.mdp.curriculum import modify_reward_weight
from roarm_lab.mdp.events import (randomization_terms, randomize_action_latency, randomize_actuator_gains, randomize_calibration_offset,
                                  randomize_joint_dynamics, randomize_rigid_body_mass, randomize_servo_speed,
                                  reset_joints_by_offset)
from roarm_lab.mdp.observations import (ee_position_b, ee_position_error_b, generated_commands, hand_position_b,
                                        joint_pos_rel, joint_target_rel, last_action, servo_joint_pos_rel,
                                        servo_joint_vel_finite_difference)
from roarm_lab.mdp.rewards import (action_rate_l2, joint_deviation_l1, joint_outside_workspace_box_l1, joint_vel_l2,
                                   position_command_error, position_command_error_tanh, position_goal_bonus)
from roarm_lab.mdp.terminations import joint_velocity_diverged, time_out

__all__ = [
    "ServoJointPositionAction",
    "ServoJointPositionActionCfg",
    "ReachableTargetCommand",
    "ReachableTargetCommandCfg",
    "reachable_target_bank",
    "modify_reward_weight",
    "randomization_terms",
    "randomize_action_latency",
    "randomize_actuator_gains",
    "randomize_calibration_offset",
    "randomize_joint_dynamics",
    "randomize_rigid_body_mass",
    "randomize_servo_speed",
    "reset_joints_by_offset",
    "ee_position_b",
    "ee_position_error_b",
    "generated_commands",
    "hand_position_b",
    "joint_pos_rel",
    "joint_target_rel",
    "last_action",
    "servo_joint_pos_rel",
    "servo_joint_vel_finite_difference",
    "action_rate_l2",
    "joint_deviation_l1",
    "joint_outside_workspace_box_l1",
    "joint_vel_l2",
    "position_command_error",
    "position_command_error_tanh",
    "position_goal_bonus",
    "joint_velocity_diverged",
    "time_out",
]
