"""The names of the per-iteration records the training loop writes to ``progress.jsonl`` (``progress.py`` writes
it; the file's name is the run layout's, ``roarm_lab.control.layout``, and the faces read it through
``roarm_lab.control.progress``, without torch). Which of the task's logged metrics fill them is the task's profile's
(``TaskProfile.success_key`` and ``error_key``): the success rate and the task's position error, in metres."""

SUCCESS_RECORD = "success_rate"
ERROR_RECORD = "position_error_m"
