"""Hyperparameter sweeps on Ray Tune (``scripts/sweep.py`` calls ``sweep.cli.main``): Optuna proposes, ASHA stops.

Each trial is one ordinary training (``roarm_lab.rl.train.main``) in a Ray worker, writing a normal run folder
(``logs/rsl_rl/<experiment>/<time>_<sweep>-<trial>``) that play, export and the faces accept. The training loop
reports every iteration's progress record to Tune itself (``train.main(on_iteration=...)``), nothing is parsed
from console text. Trials get the same budget of samples, not of iterations: ASHA's clock is ``env_steps``, so a
trial that draws bigger batches is compared with the others at the same number of samples.

The sweep folder (``logs/sweeps/<name>/``) holds ``sweep.json`` (what was asked, the state), Ray's experiment
(``tune/``, what ``--resume`` restores), and the table of trials, rewritten as results arrive: ``trials.json``,
``trials.csv``, ``trials.md`` and ``best_overrides.yaml``, a preset ``train.py --preset`` accepts.

The parts: ``space`` (the search space file, checked by the faces' rules; no Ray), ``table`` (the table of trials
and the best overrides; no Ray), ``trials`` (the Ray side: a trial, the scheduler, the table writer) and ``cli``
(the driver). Ray and Optuna are the ``sweep`` extra and are imported only when a sweep runs.
"""
