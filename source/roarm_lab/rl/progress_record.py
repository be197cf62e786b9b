"""The names of a training run's progress record, shared by its writer (``progress.py``, which needs torch and
rsl_rl) and its readers (the job store, the MCP server, the curves), which must start without them."""

PROGRESS_FILE = "progress.jsonl"
"""Per-iteration record of a run: iteration, wall_time_s since training started, success_rate, position_error_m,
mean_reward."""
SUCCESS_KEY = "Metrics/ee_target/success_rate"
ERROR_KEY = "Metrics/ee_target/position_error"
