"""Training, evaluation, export and benchmarks of RoArm tasks with rsl_rl.

Importing this package chooses passive OpenMP waits before any of its modules loads torch (``threads.py``):
scripts/train.py and the ``roarm-train`` console script both come through here.
"""

from roarm_lab.rl.threads import prefer_passive_omp_waits

prefer_passive_omp_waits()
