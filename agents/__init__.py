"""rsl_rl agent configurations of RoArm tasks."""
