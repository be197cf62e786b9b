"""MDP terms of RoArm tasks: small functions (and a few stateful classes) named by the task configs."""

from roarm_lab.isaaclab_api import ISAACLAB
from roarm_lab.mdp.actions import (BinaryServoGripperAction, BinaryServoGripperActionCfg, ServoJointPositionAction,
                                   ServoJointPositionActionCfg)
from roarm_lab.mdp.commands import ReachableTargetCommand, ReachableTargetCommandCfg, reachable_target_bank
from roarm_lab.mdp.curriculum import modify_reward_weight
from roarm_lab.mdp.events import (randomization_terms, randomize_action_latency, randomize_actuator_gains, randomize_calibration_offset,
                                  randomize_joint_dynamics, randomize_rigid_body_mass, randomize_servo_speed,
                                  reset_joints_by_offset, reset_root_state_uniform)
from roarm_lab.mdp.object_commands import ObjectGoalCommand, ObjectGoalCommandCfg
from roarm_lab.mdp.observations import (ee_position_b, ee_position_error_b, generated_commands, hand_position_b,
                                        joint_pos_rel, joint_target_rel, last_action, object_ee_vector_b,
                                        object_goal_vector_b, object_height_above, object_position_b, servo_joint_pos_rel,
                                        servo_joint_vel_finite_difference)
from roarm_lab.mdp.rewards import (action_rate_l2, joint_deviation_l1, joint_near_limits_l1,
                                   joint_outside_workspace_box_l1, joint_vel_l2, object_ee_distance, object_goal_distance,
                                   object_grasped, object_is_lifted, object_lift_progress, position_command_error,
                                   position_command_error_tanh, position_goal_bonus)
from roarm_lab.mdp.terminations import joint_velocity_diverged, object_off_table, root_height_below_minimum, time_out

if ISAACLAB:  # materials and scales are randomized by each physics backend (or on the stage): Isaac Lab's terms there
    from isaaclab.envs.mdp import randomize_rigid_body_material, randomize_rigid_body_scale
else:
    from roarm_lab.embedded.backend_events import randomize_rigid_body_material, randomize_rigid_body_scale

__all__ = [
    "BinaryServoGripperAction",
    "BinaryServoGripperActionCfg",
    "ObjectGoalCommand",
    "ObjectGoalCommandCfg",
    "object_ee_distance",
    "object_ee_vector_b",
    "object_goal_distance",
    "object_goal_vector_b",
    "object_grasped",
    "object_height_above",
    "object_is_lifted",
    "object_lift_progress",
    "object_off_table",
    "object_position_b",
    "randomize_rigid_body_material",
    "randomize_rigid_body_scale",
    "reset_root_state_uniform",
    "root_height_below_minimum",
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
