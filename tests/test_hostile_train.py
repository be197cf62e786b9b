"""train.py and play.py against hostile files and bad numbers (issue 11, items 1, 8, 9, 10 and resume latest):
crafted checkpoints and run files, zero/negative/NaN settings, a failed resume, concurrent run folders; and
(issue 25, items 2 and 17) checkpoint pruning, a training killed with -9 ten times, a disk that really fills up."""

from __future__ import annotations

import ast
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from roarm_lab.rl.checkpoints import (CheckpointError, create_run_dir, latest_checkpoint, latest_run_dir,
                                      load_checkpoint)
from roarm_lab.rl.play import main as play_main
from roarm_lab.rl.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num_envs", "8", "--no-progress", "agent.num_steps_per_env=4", "agent.save_interval=1",
        "agent.actor.hidden_dims=[16,16]", "agent.critic.hidden_dims=[16,16]"]


def _train(log_root: Path, *extra: str) -> int:
    return train_main(["--task", "RoArm-Reach-v0", "--log_root", str(log_root), *TINY, *extra])


def _play(checkpoint: Path, *extra: str) -> int:
    return play_main(["--task", "RoArm-Reach-v0", "--checkpoint", str(checkpoint), "--episodes", "2", "--num_envs", "2",
                      "--no-progress", *extra])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    log_root = tmp_path_factory.mktemp("logs")
    assert _train(log_root, "--max_iterations", "1", "--run_name", "tiny") == 0
    (run_dir,) = list((log_root / "roarm_reach").iterdir())
    return run_dir


class _RunsCode:
    """Pickles as a call of os.makedirs(marker): what a crafted checkpoint carries instead of tensors."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (str(self.marker),)


def _crafted(tiny_run: Path, dest: Path, marker: Path) -> Path:
    data = torch.load(tiny_run / "model_0.pt", weights_only=True)
    data["infos"] = {"task": "RoArm-Reach-v0", "payload": _RunsCode(marker)}
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_run / "agent.yaml", dest / "agent.yaml")
    torch.save(data, dest / "model_5.pt")
    return dest / "model_5.pt"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------- 1. code in a checkpoint
def test_a_checkpoint_that_runs_code_is_refused_by_play_and_by_resume(tiny_run, tmp_path, capsys):
    marker = tmp_path / "ran"
    logs = tmp_path / "logs"
    crafted = _crafted(tiny_run, logs / "roarm_reach" / "9999-zz_newest", marker)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(crafted)
    assert _play(crafted) == 2
    assert "cannot be loaded safely" in _one_error_line(capsys)
    assert _train(logs, "--max_iterations", "2", "--resume", str(crafted)) == 2
    assert "cannot be loaded safely" in _one_error_line(capsys)
    assert _train(logs, "--max_iterations", "2", "--resume") == 2  # a bare --resume finds it as the newest run
    assert "cannot be loaded safely" in _one_error_line(capsys)
    assert not marker.exists()  # no code ran, on any path


def test_no_code_path_loads_a_checkpoint_with_weights_only_false():
    """rsl_rl's OnPolicyRunner.load uses torch.load(weights_only=False): it must never be called, and every
    torch.load of ours passes weights_only=True."""
    import rsl_rl.runners.on_policy_runner as opr

    assert "weights_only=False" in Path(opr.__file__).read_text()  # why runner.load is off limits
    bad = []
    for folder in ("source", "real", "scripts", "tasks", "agents", "mcp_server"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                owner = ast.unparse(node.func.value)
                if node.func.attr == "load" and owner == "torch":
                    kw = {k.arg: k.value for k in node.keywords}
                    if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} torch.load without weights_only=True")
                if node.func.attr == "load" and "runner" in owner.lower():
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {owner}.load (rsl_rl's unsafe loader)")
    assert not bad, bad


def test_the_runner_s_own_load_is_the_safe_one(tiny_run, tmp_path, make_reach_env):
    """``RoArmRunner.load`` (rsl_rl's name, so any caller reaches it) refuses a code-carrying file without running
    it, and restores a real checkpoint: weights, iteration and the environment's step counter."""
    from roarm_lab.registry import load_cfg_from_registry
    from roarm_lab.rl.runner import RoArmRunner
    from roarm_lab.rl.runner import to_rsl_rl_dict
    from roarm_lab.rl.vecenv import RslRlVecEnvWrapper

    agent = load_cfg_from_registry("RoArm-Reach-v0", "rsl_rl_cfg_entry_point")
    agent.actor.hidden_dims = agent.critic.hidden_dims = [16, 16]
    env = make_reach_env(4)
    runner = RoArmRunner(RslRlVecEnvWrapper(env), to_rsl_rl_dict(agent), log_dir=None, device="cpu",
                         total_iterations=0, show_progress=False)
    marker = tmp_path / "ran"
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        runner.load(str(_crafted(tiny_run, tmp_path / "crafted", marker)))
    assert not marker.exists()
    saved = torch.load(tiny_run / "model_0.pt", weights_only=True)
    runner.current_learning_iteration, env.common_step_counter = 99, 0
    infos = runner.load(str(tiny_run / "model_0.pt"))
    assert infos["task"] == "RoArm-Reach-v0"
    assert runner.current_learning_iteration == saved["iter"]
    assert env.common_step_counter == saved["env_state"]["common_step_counter"] > 0
    for name, tensor in runner.alg.save()["actor_state_dict"].items():
        assert torch.equal(tensor, saved["actor_state_dict"][name]), name


def test_a_run_file_that_names_foreign_code_is_refused_by_play(tiny_run, tmp_path, capsys, monkeypatch):
    (tmp_path / "probe_mod.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\nclass Model: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run / "model_0.pt", run / "model_0.pt")
    agent = yaml.safe_load((tiny_run / "agent.yaml").read_text())
    agent["actor"]["class_name"] = "probe_mod:Model"  # rsl_rl imports and calls whatever is named here
    (run / "agent.yaml").write_text(yaml.safe_dump(agent))
    assert _play(run / "model_0.pt") == 2
    assert "only the task's own classes" in _one_error_line(capsys)
    assert not (tmp_path / "imported").exists()


# ---------------------------------------------------------------------------- 8. zero, negative, NaN
@pytest.mark.parametrize("args, named", [
    (["--max_iterations", "0"], "--max_iterations 0"), (["--num_envs", "0"], "--num_envs 0"),
    (["--num_envs", "-3"], "--num_envs -3"), (["env.scene.num_envs=-5"], "env.scene.num_envs=-5"),
    (["env.sim.dt=0"], "env.sim.dt=0"), (["agent.algorithm.learning_rate=nan"], "agent.algorithm.learning_rate=nan"),
    (["env.decimation=0"], "env.decimation=0"), (["env.rewards.tracking.weight=[1,2"], "cannot parse the overrides"),
    (["--physics_threads", "-1"], "--physics_threads -1"), (["--keep_checkpoints", "-1"], "--keep_checkpoints -1"),
])
def test_bad_settings_of_train_are_one_line_errors_and_start_no_run(tmp_path, capsys, args, named):
    base = [a for a in TINY if a not in ("--num_envs", "8")]
    code = train_main(["--task", "RoArm-Reach-v0", "--log_root", str(tmp_path), *base, *args])
    assert code == 2
    line = _one_error_line(capsys)
    assert named in line and ("must" in line or "write them as" in line)
    assert not (tmp_path / "roarm_reach").exists()  # no run folder, nothing written


def test_cuda_without_cuda_is_a_one_line_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert _train(tmp_path, "--device", "cuda:0") == 2
    assert "--device cuda:0" in _one_error_line(capsys)


@pytest.mark.parametrize("args, named", [(["--episodes", "0"], "--episodes 0"), (["--num_envs", "-1"], "--num_envs -1")])
def test_bad_counts_of_play_are_one_line_errors(tiny_run, capsys, args, named):
    code = play_main(["--task", "RoArm-Reach-v0", "--checkpoint", str(tiny_run / "model_0.pt"), "--no-progress", *args])
    assert code == 2 and named in _one_error_line(capsys)


# ---------------------------------------------------------------------------- 9. a failed resume
def test_a_resume_with_another_network_shape_rewrites_nothing(tmp_path, capsys):
    assert _train(tmp_path, "--max_iterations", "1", "--run_name", "shape") == 0
    (run,) = list((tmp_path / "roarm_reach").iterdir())
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert _train(tmp_path, "--max_iterations", "3", "agent.actor.hidden_dims=[32,32]", "--resume", str(run)) == 2
    line = _one_error_line(capsys)
    assert "shape" in line and "hidden_dims" in line
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before  # agent.yaml, env.yaml, checkpoints: as they were, nothing added


# ---------------------------------------------------------------------------- 10. run folders
def test_runs_started_at_once_with_one_name_get_their_own_folders(tmp_path):
    barrier, made = threading.Barrier(8), []

    def start():
        barrier.wait()
        made.append(create_run_dir(tmp_path / "exp", "2026-01-01_00-00-00_twin"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8 and all(p.is_dir() and not any(p.iterdir()) for p in made)


def test_two_trainings_with_one_run_name_never_share_a_folder(tmp_path):
    (tmp_path / "roarm_reach").mkdir()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    for later in range(15):  # the folders a run started in the next seconds would take: already there
        t = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(time.time() + later))
        (tmp_path / "roarm_reach" / f"{t}_twin").mkdir(exist_ok=True)
    assert _train(tmp_path, "--max_iterations", "1", "--run_name", "twin") == 0
    runs = [r for r in (tmp_path / "roarm_reach").iterdir() if (r / "model_0.pt").is_file()]
    assert len(runs) == 1 and runs[0].name.endswith("_twin_2") and runs[0].name >= stamp


def test_resume_latest_is_the_run_written_last_not_the_last_name(tiny_run, tmp_path):
    exp = tmp_path / "roarm_reach"
    old, new = exp / "zzzz_sorts_last", exp / "2026-01-01_00-00-00_written_last"
    for run in (old, new):
        run.mkdir(parents=True)
        shutil.copy(tiny_run / "model_0.pt", run / "model_0.pt")
    past = time.time() - 3600
    os.utime(old / "model_0.pt", (past, past))
    assert latest_run_dir(exp) == new


# ---------------------------------------------------------------------------- issue 25, 2. checkpoints pruned
def _numbered(run_dir: Path) -> dict[int, Path]:
    return {int(m.group(1)): p for p in run_dir.iterdir() if (m := re.fullmatch(r"model_(\d+)\.pt", p.name))}


def _best_iteration(run_dir: Path) -> int:
    """The iteration with the highest success rate in progress.jsonl (then the lower error, then the newer)."""
    records = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    scored = [r for r in records if "success_rate" in r]
    return max(scored, key=lambda r: (r["success_rate"], -r.get("position_error_m", float("inf")), r["iteration"]))[
        "iteration"]


def test_checkpoints_are_pruned_to_the_newest_few_and_the_best_and_hand_named_ones_stay(tmp_path):
    """save_interval=1 wrote a checkpoint every iteration and none was ever deleted."""
    short = "env.episode_length_s=0.5"  # episodes end every few iterations: success rates to choose the best by
    assert _train(tmp_path, "--max_iterations", "8", short) == 0
    (run,) = list((tmp_path / "roarm_reach").iterdir())
    best = json.loads((run / "best.json").read_text())
    assert best["checkpoint"] == f"model_{_best_iteration(run)}.pt" and best["metric"] == "success_rate"
    assert set(_numbered(run)) - {best["iteration"]} == {5, 6, 7}  # the default keeps the newest three
    assert json.loads((run / "run.json").read_text())["best_checkpoint"] == best["checkpoint"]

    mine = {"my_policy.pt": (run / "model_7.pt").read_bytes(), "model_7_backup.pt": (run / "model_6.pt").read_bytes()}
    for name, data in mine.items():
        (run / name).write_bytes(data)
    assert _train(tmp_path, "--max_iterations", "14", "--resume", str(run), "--keep_checkpoints", "2", short) == 0
    best = json.loads((run / "best.json").read_text())
    assert best["checkpoint"] == f"model_{_best_iteration(run)}.pt"  # over both parts of the run
    assert set(_numbered(run)) - {best["iteration"]} == {12, 13}
    assert latest_checkpoint(run).name == "model_13.pt"  # what --resume loads next
    for name, data in mine.items():
        assert (run / name).read_bytes() == data, f"{name} was touched"
    for path in _numbered(run).values():
        load_checkpoint(path)


def test_keep_checkpoints_0_keeps_every_one(tmp_path):
    assert _train(tmp_path, "--max_iterations", "5", "--keep_checkpoints", "0") == 0
    (run,) = list((tmp_path / "roarm_reach").iterdir())
    assert set(_numbered(run)) == {0, 1, 2, 3, 4}


def _spawn_train(log_root: Path, *extra: str) -> subprocess.Popen:
    log_root.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), "--task", "RoArm-Reach-v0",
                             "--log_root", str(log_root), *TINY, *extra], cwd=log_root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.long
def test_a_training_killed_with_minus_9_ten_times_leaves_every_checkpoint_loadable(tmp_path):
    """Killed at random moments while it saves and prunes every iteration: whatever is left loads, best.json names
    a checkpoint that is there, and --resume continues."""
    rng = random.Random(25)
    args = ["--max_iterations", "5000", "--keep_checkpoints", "2", "env.episode_length_s=0.5"]
    newest = -1
    for kill in range(10):
        proc = _spawn_train(tmp_path, *args, *(["--resume"] if kill else []))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            runs = list((tmp_path / "roarm_reach").glob("*"))
            if runs and max(_numbered(runs[0]), default=-1) > newest:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        (run,) = list((tmp_path / "roarm_reach").iterdir())
        for path in _numbered(run).values():
            load_checkpoint(path)
        if (run / "best.json").exists():
            load_checkpoint(run / json.loads((run / "best.json").read_text())["checkpoint"])
        newest = max(_numbered(run))
    proc = _spawn_train(tmp_path, "--max_iterations", str(newest + 3), "--resume")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"model_{newest}.pt" in out and latest_checkpoint(run).name == f"model_{newest + 2}.pt"


# ---------------------------------------------------------------------------- issue 25, 17. a full disk
@pytest.fixture
def small_disk(tmp_path):
    """A real filesystem that really fills up: a 16 MiB tmpfs (mounting one needs root; CI runs as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                              text=True, timeout=30)
    except FileNotFoundError:
        done = None
    if done is None or done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() if done else 'no mount command'}); the "
                    "full-disk tests need root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def _fill(mount: Path, leave: int) -> Path:
    """Leave ``leave`` bytes free on the filesystem of ``mount``."""
    ballast = mount / "ballast"
    with open(ballast, "wb") as handle:
        handle.write(b"\0" * max(shutil.disk_usage(mount).free - leave, 0))
    return ballast


@pytest.mark.long
@pytest.mark.parametrize("leave, extra", [  # what filled first here: env.yaml, a progress record, a checkpoint
    (0, []), (60_000, ["agent.save_interval=100000"]), (120_000, [])])
def test_a_full_disk_ends_in_one_line_naming_the_folder_and_the_free_space_and_keeps_the_checkpoint(small_disk, leave,
                                                                                                   extra):
    logs = small_disk / "logs"
    assert _spawn_train(logs, "--max_iterations", "2").wait(120) == 0
    (run,) = list((logs / "roarm_reach").iterdir())
    before = max(_numbered(run))
    ballast = _fill(small_disk, leave)
    proc = _spawn_train(logs, "--max_iterations", "400", "--keep_checkpoints", "0", "--resume", str(run), *extra)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode not in (0, None), (out, err)
    assert "Traceback" not in out + err and "Exception" not in out + err, err
    (line,) = [e for e in err.strip().splitlines() if e.startswith("error:")]
    assert err.strip().splitlines()[-1] == line
    assert str(run) in line and "--resume" in line and "free" in line, line
    assert re.search(r"\d+(\.\d+)? (B|KiB|MiB) free", line), line
    newest = latest_checkpoint(run)
    at = int(newest.stem.split("_")[1])
    assert at >= before and newest.name in line
    load_checkpoint(newest)
    log = (run / "train_console.log").read_text()
    assert ("Traceback" in log and "No space left" in log) or leave == 0  # the details, where they fit
    for record in (run / "progress.jsonl").read_text().splitlines():
        json.loads(record)  # no half record
    ballast.unlink()  # free space, then --resume: the run continues from that checkpoint
    proc = _spawn_train(logs, "--max_iterations", str(at + 2), "--resume", str(run))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and f"from {newest.name}" in out, err


def test_a_progress_line_on_a_full_disk_is_written_whole_or_not_at_all(small_disk):
    from roarm_lab.utils.io import append_text

    path = small_disk / "progress.jsonl"
    append_text(path, json.dumps({"iteration": 0}) + "\n")
    _fill(small_disk, 0)
    with pytest.raises(OSError) as err:
        append_text(path, json.dumps({"iteration": 1, "pad": "x" * 20_000}) + "\n")
    assert err.value.errno == 28  # ENOSPC
    assert path.read_text() == '{"iteration": 0}\n'


_TENSORBOARD_ON_A_FULL_DISK = """
import sys
from torch.utils.tensorboard import SummaryWriter
from roarm_lab.utils.io import disk_full_reported_by_the_caller, is_disk_full
writer = SummaryWriter(log_dir=sys.argv[1], flush_secs=10)
try:
    with open(sys.argv[2], "wb") as ballast:
        while True:
            ballast.write(bytes(1 << 16))
except OSError:
    pass  # the disk is full from here on
try:
    with disk_full_reported_by_the_caller():
        for step in range(1_000_000):
            writer.add_scalar("Train/mean_reward", float(step), step)
        writer.close()
except OSError as err:
    print("caller saw", err.errno, is_disk_full(err, sys.argv[1]))
"""


def test_tensorboard_s_writer_thread_on_a_full_disk_is_quiet_and_its_error_reaches_the_caller(small_disk):
    """TensorBoard writes from a thread of its own, which printed its traceback when the disk filled."""
    done = subprocess.run([sys.executable, "-c", _TENSORBOARD_ON_A_FULL_DISK, str(small_disk / "tb"),
                           str(small_disk / "ballast")], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["caller", "saw", "28", "True"], done
    assert "Traceback" not in done.stderr, done.stderr
