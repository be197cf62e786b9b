"""What RoArm-Reach-v0 reports: the hand's distance to its target."""

from roarm_lab.task_profile import Bound, Measure, TaskProfile

PROFILE = TaskProfile(
    title="move the hand to a target position",
    command="ee_target",
    measures=(Measure("hand_error_m", "hand error", "ee_error"),),
    success=(Bound("hand_error_m", "success_threshold_m"),),
    success_text="the hand within 2 cm of the target at the end of the 3 s episode",
    training_error="position_error",
)
