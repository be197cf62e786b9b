"""train.py and play.py end to end on tiny budgets: run folder, resume, export, metrics, rollouts, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from roarm_lab.rl.play import main as play_main
from roarm_lab.rl.threads import prefer_passive_omp_waits
from roarm_lab.rl.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num_envs", "16", "--no-progress", "agent.num_steps_per_env=8", "agent.save_interval=1",
        "agent.actor.hidden_dims=[16,16]", "agent.critic.hidden_dims=[16,16]"]


def _train(log_root: Path, *extra: str) -> int:
    return train_main(["--task", "RoArm-Reach-v0", "--log_root", str(log_root), *TINY, *extra])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    log_root = tmp_path_factory.mktemp("logs")
    # 0.5 s episodes: every env finishes some in 3 x 8 steps, so the episode metrics exist
    assert _train(log_root, "--max_iterations", "3", "--run_name", "tiny", "env.episode_length_s=0.5") == 0
    (run_dir,) = list((log_root / "roarm_reach").iterdir())
    return run_dir


def test_train_writes_configs_checkpoints_events_and_run_json(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"env.yaml", "agent.yaml", "run.json", "model_2.pt"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    assert not [n for n in names if n.endswith(".tmp")]
    agent = yaml.safe_load((trained_run / "agent.yaml").read_text())
    assert agent["num_steps_per_env"] == 8 and agent["actor"]["hidden_dims"] == [16, 16]
    env = yaml.safe_load((trained_run / "env.yaml").read_text())
    assert env["scene"]["num_envs"] == 16 and env["rewards"]["tracking"]["weight"] == -2.0
    run = json.loads((trained_run / "run.json").read_text())
    assert run["task"] == "RoArm-Reach-v0" and len(run["env_cfg_hash"]) == 16 and run["git"]
    assert run["final_checkpoint"] == "model_2.pt" and "mean_reward" in run["final_metrics"]


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    assert _train(tmp_path, "--max_iterations", "2") == 0
    (run_dir,) = list((tmp_path / "roarm_reach").iterdir())
    (run_dir / "model_1.pt").unlink()  # as if killed after saving model_0
    assert _train(tmp_path, "--max_iterations", "4", "--resume") == 0
    assert (run_dir / "model_3.pt").is_file() and len(list((tmp_path / "roarm_reach").iterdir())) == 1
    run = json.loads((run_dir / "run.json").read_text())
    assert run["resumed_from"] == 1 and run["iterations"] == 4


def _last_curriculum_weight(run_dir: Path) -> float:
    """The action-rate weight of the newest iteration in rsl_rl's own report of the run."""
    text = (run_dir / "train_console.log").read_text()
    return float(text.rsplit("Curriculum/action_rate:", 1)[1].split()[0])


def test_a_killed_and_resumed_run_ends_with_the_same_curriculum_as_an_unbroken_one(tmp_path):
    """The curriculum raises the action-rate weight after 40 env steps: between iteration 3 (24 steps) and 6 (48)."""
    curriculum = ["env.curriculum.action_rate.params.num_steps=40", "env.episode_length_s=0.2"]  # 6-step episodes: resets in every 8-step iteration
    assert _train(tmp_path / "straight", "--max_iterations", "6", *curriculum) == 0
    (straight,) = list((tmp_path / "straight" / "roarm_reach").iterdir())
    assert _train(tmp_path / "broken", "--max_iterations", "3", *curriculum) == 0
    assert _train(tmp_path / "broken", "--max_iterations", "6", "--resume", "latest", *curriculum) == 0
    (broken,) = list((tmp_path / "broken" / "roarm_reach").iterdir())
    raised = -0.02  # the task's curriculum target for action_rate
    assert _last_curriculum_weight(straight) == pytest.approx(raised)
    assert _last_curriculum_weight(broken) == pytest.approx(raised)


def test_play_exports_evaluates_records_and_plots(trained_run, tmp_path):
    ckpt = trained_run / "model_2.pt"
    rec = tmp_path / "rollouts"
    code = play_main(["--task", "RoArm-Reach-v0", "--checkpoint", str(ckpt), "--episodes", "6", "--num_envs", "4",
                      "--no-progress", "--record-rollouts", str(rec)])
    assert code == 0
    out = trained_run / "exported"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("success_rate", "mean_final_error_m", "p95_final_error_m", "mean_action_rate", "episodes"):
        assert key in metrics
    assert metrics["episodes"] == 6 and 0.0 <= metrics["success_rate"] <= 1.0
    assert metrics["p95_final_error_m"] >= metrics["median_final_error_m"] > 0
    assert (out / "error_over_time.png").read_bytes()[:4] == b"\x89PNG"
    episodes = sorted(rec.glob("episode_*.npz"))
    assert len(episodes) == 6
    ep = np.load(episodes[0])
    assert ep["obs"].shape == (90, 29) and ep["actions"].shape == (90, 5) and ep["target_pos"].shape == (90, 3)
    assert json.loads(str(ep["randomization"]))["link_masses_kg"]
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["task"] == "RoArm-Reach-v0" and "tracking" in meta["reward_terms"]
    # the final error recorded in the episode file is the one the metrics used
    assert ep["error"][-1] < 1.0


def test_play_randomized_writes_its_own_metrics(trained_run):
    code = play_main(["--task", "RoArm-Reach-v0", "--checkpoint", str(trained_run / "model_2.pt"), "--episodes", "4",
                      "--num_envs", "4", "--no-progress", "--randomize", "--policy", "torchscript"])
    assert code == 0
    metrics = json.loads((trained_run / "exported" / "metrics_randomized.json").read_text())
    assert metrics["randomize"] is True and metrics["episodes"] == 4


def test_missing_checkpoint_is_named(capsys, tmp_path):
    code = play_main(["--task", "RoArm-Reach-v0", "--checkpoint", str(tmp_path / "nope.pt"), "--episodes", "2"])
    assert code == 2 and "checkpoint not found" in capsys.readouterr().err


def test_mismatched_checkpoint_says_what_differs(tmp_path, capsys):
    assert _train(tmp_path, "--max_iterations", "1", "env.observations.policy.actions=null") == 0
    (run_dir,) = list((tmp_path / "roarm_reach").iterdir())
    code = play_main(["--task", "RoArm-Reach-v0", "--checkpoint", str(run_dir / "model_0.pt"), "--episodes", "2",
                      "--no-progress"])
    assert code == 2
    assert "expects 24 observations, task 'RoArm-Reach-v0' gives 29" in capsys.readouterr().err


def test_bad_override_and_unknown_task_fail_with_a_message(tmp_path, capsys):
    assert _train(tmp_path, "env.rewards.trackng.weight=1") == 2
    assert "env.rewards.trackng" in capsys.readouterr().err
    assert train_main(["--task", "RoArm-Nope-v0", "--log_root", str(tmp_path)]) == 2
    assert "RoArm-Reach-v0" in capsys.readouterr().err


def test_every_script_is_a_thin_wrapper_of_a_console_script():
    """scripts/X.py calls the same main as a console script (tests/test_packaging.py runs those outside a checkout)."""
    import ast
    import tomllib

    targets = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"].values())
    for script in sorted((ROOT / "scripts").glob("*.py")):
        tree = ast.parse(script.read_text())
        imports = [f"{n.module}:{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
        assert len(imports) == 1 and imports[0] in targets, f"{script.name}: {imports}"
        assert len(script.read_text().splitlines()) <= 12, f"{script.name} holds logic; put it in the package"


def test_the_runner_s_mini_batches_are_rsl_rl_s_exactly(make_reach_env):
    """RoArmRunner gathers mini-batches by row (index_select); they must be rsl_rl's own, field by field, in the
    same order, for the same random state: the speed-up may not change a single sample."""
    import torch
    from rsl_rl.storage import RolloutStorage

    from roarm_lab.registry import load_cfg_from_registry
    from roarm_lab.rl.runner import RoArmRunner
    from roarm_lab.rl.runner import to_rsl_rl_dict
    from roarm_lab.rl.vecenv import RslRlVecEnvWrapper

    agent = load_cfg_from_registry("RoArm-Reach-v0", "rsl_rl_cfg_entry_point")
    agent.num_steps_per_env = 6
    agent.actor.hidden_dims = agent.critic.hidden_dims = [16, 16]
    runner = RoArmRunner(RslRlVecEnvWrapper(make_reach_env(8)), to_rsl_rl_dict(agent), log_dir=None, device="cpu",
                         total_iterations=1, show_progress=False)
    runner.learn(1)  # fills the rollout storage
    storage = runner.alg.storage
    assert type(storage.mini_batch_generator).__name__ == "_RowGatheredMiniBatches"
    torch.manual_seed(5)
    ours = list(storage.mini_batch_generator(4, 2))
    torch.manual_seed(5)
    theirs = list(RolloutStorage.mini_batch_generator(storage, 4, 2))
    assert len(ours) == len(theirs) == 8
    for a, b in zip(ours, theirs):
        for key in ("policy", "critic"):
            assert torch.equal(a.observations[key], b.observations[key])
        for field in ("actions", "values", "advantages", "returns", "old_actions_log_prob"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
        assert all(torch.equal(p, q) for p, q in zip(a.old_distribution_params, b.old_distribution_params))
    assert not torch.equal(ours[0].actions, ours[1].actions)  # the batches are different rows


_ENV_PROBE = """
import importlib, os, runpy, sys
target = sys.argv[1]
runpy.run_path(target) if target.endswith(".py") else importlib.import_module(target)  # main() not called
print(os.environ.get("OMP_WAIT_POLICY"), "torch" in sys.modules)
"""


@pytest.mark.parametrize("target", [str(ROOT / "scripts" / "train.py"), str(ROOT / "scripts" / "play.py"),
                                    "roarm_lab.rl.train", "roarm_lab.rl.benchmark"])
@pytest.mark.parametrize("user_value", [None, "ACTIVE"])
def test_training_entry_points_choose_passive_openmp_waits_before_torch_loads_and_keep_the_users(target, user_value):
    """The scripts and the console scripts (``roarm-train`` imports ``roarm_lab.rl.train``) both go through
    ``roarm_lab.rl``, which sets the policy before its modules load torch (libgomp reads it only then)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user_value:
        env["OMP_WAIT_POLICY"] = user_value
    out = subprocess.run([sys.executable, "-c", _ENV_PROBE, target], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == [user_value or "PASSIVE", "True"]


def test_no_wait_policy_is_set_once_torch_has_loaded(monkeypatch):
    environ: dict[str, str] = {}
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch") or object())
    assert prefer_passive_omp_waits(environ) is None and environ == {}
    monkeypatch.delitem(sys.modules, "torch")
    assert prefer_passive_omp_waits(environ) == "PASSIVE" and environ == {"OMP_WAIT_POLICY": "PASSIVE"}
