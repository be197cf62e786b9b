"""What RoArm-Lift-v0 reports: the cube's distance to its goal, its height, and whether the hand holds it."""

from roarm_lab.task_profile import Bound, Measure, TaskProfile

PROFILE = TaskProfile(
    title="grasp the cube and carry it to a goal above the table",
    command="object_goal",
    measures=(Measure("goal_error_m", "goal error", "goal_from_object"),
              Measure("cube_height_m", "cube height above rest", "lift_height", reduce="value"),
              Measure("hand_to_cube_m", "hand to cube", "object_from_hand")),
    success=(Bound("goal_error_m", "success_threshold_m"), Bound("cube_height_m", "min_lift_m", at_most=False)),
    success_text="the cube's centre within 2.5 cm of the goal and at least 2 cm above its rest at the episode's end",
    training_error="goal_error",
    gripper_action="gripper_action",
    object_terms=("object_position", "object_from_hand", "goal_from_object"),
)
