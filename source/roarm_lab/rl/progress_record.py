"""The task metrics the training loop reads from rsl_rl's episode extras into ``progress.jsonl`` (``progress.py``
writes it; the file's name is the run layout's, ``roarm_lab.control.layout``, and the faces read it through
``roarm_lab.control.progress``, without torch)."""

SUCCESS_KEY = "Metrics/ee_target/success_rate"
ERROR_KEY = "Metrics/ee_target/position_error"
