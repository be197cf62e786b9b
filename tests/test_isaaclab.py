"""Isaac Lab 3 itself (kitless, Newton on the CPU): what only runs in the Isaac Lab venv.

``.ci/run`` builds that venv (``scripts/setup_isaaclab.sh``) and runs this module there with
``tests/test_task_on_runtimes.py``; in the default venv the Isaac Lab tests skip and the refusals run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roarm_lab.isaaclab_api import RUNTIME
from roarm_lab.runtime_choice import isaaclab_installed
from task_edits import only_events

ROOT = Path(__file__).resolve().parents[1]
TASK = "RoArm-Reach-v0"
on_isaaclab = pytest.mark.skipif(RUNTIME != "isaaclab", reason=(
    "needs the Isaac Lab venv: scripts/setup_isaaclab.sh, then ROARM_RUNTIME=isaaclab .venv-isaaclab/bin/python -m "
    "pytest tests/test_isaaclab.py tests/test_task_on_runtimes.py"))


def run(args: list[str], cwd: Path = ROOT, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.mark.skipif(isaaclab_installed(), reason="checks the refusal where Isaac Lab is absent")
def test_asking_for_isaac_lab_where_it_is_not_installed_names_the_setup_command(tmp_path):
    out = run([sys.executable, "scripts/train.py", "--task", TASK, "--runtime", "isaaclab", "--log_root",
               str(tmp_path)])
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "scripts/setup_isaaclab.sh" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written


@on_isaaclab
def test_the_task_registers_on_isaac_labs_own_classes():
    import gymnasium as gym
    from isaaclab.managers import CommandTerm as IsaacCommandTerm

    from roarm_lab import isaaclab_api
    from roarm_lab.mdp import ReachableTargetCommand

    assert isaaclab_api.configclass.__module__.startswith("isaaclab")
    assert issubclass(ReachableTargetCommand, IsaacCommandTerm)
    assert gym.spec(TASK).entry_point == "isaaclab.envs:ManagerBasedRLEnv"


@on_isaaclab
def test_a_partial_isaac_lab_import_is_an_error_that_names_the_missing_class():
    probe = ("import sys, types\n"
             "import isaaclab.utils.noise as real\n"
             "class Renamed(types.ModuleType):  # the module as a release that renamed UniformNoiseCfg\n"
             "    def __getattr__(self, name):\n"
             "        if name == 'UniformNoiseCfg':\n"
             "            raise AttributeError(name)\n"
             "        return getattr(real, name)\n"
             "sys.modules['isaaclab.utils.noise'] = Renamed('isaaclab.utils.noise')\n"
             "import roarm_lab.isaaclab_api\n")
    out = run([sys.executable, "-c", probe], env={"ROARM_RUNTIME": "isaaclab"})
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "UniformNoiseCfg" in last and "setup_isaaclab.sh" in last and "RuntimeUnavailable" in last


@on_isaaclab
def test_the_embedded_runtime_cannot_run_here_and_says_so(tmp_path):
    out = run([sys.executable, "scripts/train.py", "--task", TASK, "--runtime", "embedded", "--log_root", str(tmp_path)])
    assert out.returncode == 2 and "Traceback" not in out.stderr and "MuJoCo 4" in out.stderr


@on_isaaclab
def test_an_unknown_preset_is_refused_by_name():
    from roarm_lab.rl.run_setup import load_task_configs
    from roarm_lab.rl.overrides import OverrideError

    with pytest.raises(OverrideError, match="newton_mj.*this task has.*physx"):
        load_task_configs(TASK, ["presets=newton_mj"])
    env_cfg, _, applied = load_task_configs(TASK, ["presets=physx"])
    assert type(env_cfg.sim.physics).__name__ == "PhysxCfg" and applied == ["presets=physx"]
    env_cfg, _, _ = load_task_configs(TASK, [])
    solver = env_cfg.sim.physics.solver_cfg
    assert (solver.integrator, solver.cone, solver.iterations) == ("implicitfast", "pyramidal", 100)


@on_isaaclab
def test_the_committed_usd_is_the_generators_output():
    from roarm_lab.assets.usd import USD_PATH, build_usda

    assert USD_PATH.read_text() == build_usda(), "regenerate it: python -m roarm_lab.assets.usd"


@on_isaaclab
def test_newton_reads_the_arm_as_the_tables_state_it(make_reach_env):
    """Limits, masses, gains and the hand frame as Isaac Lab reports them after importing our USD."""
    import torch

    from roarm_lab.assets.joint_table import JOINTS, TCP_FRAME
    from roarm_lab.assets.kinematics import tcp_positions_base
    from roarm_lab.assets.links import LINKS
    from roarm_lab.mdp import hand_position_b

    env = make_reach_env(num_envs=2, edit=only_events())
    robot = env.scene["robot"]
    data = robot.data
    assert robot.joint_names == [j.name for j in JOINTS]
    torch.testing.assert_close(data.soft_joint_pos_limits.torch[0], torch.tensor([[j.lower, j.upper] for j in JOINTS]),
                               atol=1e-5, rtol=0)
    ids, _ = robot.find_bodies([link.name for link in LINKS], preserve_order=True)
    torch.testing.assert_close(data.body_mass.torch[0, ids], torch.tensor([link.mass for link in LINKS]))
    torch.testing.assert_close(data.joint_stiffness.torch[0], torch.tensor([j.kp for j in JOINTS]))
    torch.testing.assert_close(data.joint_armature.torch[0], torch.tensor([j.armature for j in JOINTS]))
    env.reset()
    tcp = robot.find_bodies(TCP_FRAME)[0][0]
    home = torch.tensor([j.home for j in JOINTS])
    expected = torch.as_tensor(tcp_positions_base(home.numpy()), dtype=torch.float32)[0]
    torch.testing.assert_close(hand_position_b(robot, tcp)[0], expected, atol=2e-3, rtol=0)  # at home, before sag


@on_isaaclab
def test_isaac_labs_own_cli_trains_and_plays_the_task(tmp_path):
    """``isaaclab train`` finds the task through the ``isaaclab.tasks`` entry point and our agent config."""
    cli = str(Path(sys.executable).with_name("isaaclab"))
    out = run([cli, "train", "--rl_library", "rsl_rl", "--task", TASK, "--device", "cpu", "--viz", "none",
               "--num_envs", "16", "--max_iterations", "2"], cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    checkpoints = sorted((tmp_path / "logs" / "rsl_rl" / "roarm_reach").glob("*/model_1.pt"))
    assert checkpoints, out.stdout[-2000:]
    # play runs until stopped: let it export, step a while, then stop it
    play = subprocess.Popen([cli, "play", "--rl_library", "rsl_rl", "--task", TASK, "--device", "cpu", "--viz", "none",
                             "--num_envs", "2", "--checkpoint", str(checkpoints[-1])], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    exported = checkpoints[-1].parent / "exported" / "policy.onnx"
    deadline = time.monotonic() + 300
    while not exported.exists() and play.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(5)
    alive = play.poll() is None
    play.send_signal(signal.SIGINT)
    try:
        output = play.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        play.kill()
        output = play.communicate()[0]
    assert exported.exists() and alive, output[-3000:]
    assert "Traceback" not in output


@on_isaaclab
def test_a_policy_trained_on_the_embedded_runtime_moves_the_hand_toward_targets_here(tmp_path, make_reach_env):
    """Sim-to-sim in CI: ``.ci/run`` trains a short policy on the embedded runtime and names it here."""
    import torch

    from roarm_lab.rl.evaluate import evaluate

    checkpoint = os.environ.get("ROARM_SIM2SIM_CHECKPOINT")
    if not checkpoint:
        pytest.skip("ROARM_SIM2SIM_CHECKPOINT not set (.ci/run sets it after a short embedded training run)")
    env = make_reach_env(num_envs=50, seed=12345, edit=lambda cfg: cfg.evaluation_mode(randomize=False))
    baseline, _ = evaluate(env, lambda obs: torch.zeros(obs.shape[0], 5), 100, task=TASK,
                           show_progress=False)  # a still arm
    env.close()
    out = run([sys.executable, "scripts/play.py", "--task", TASK, "--runtime", "isaaclab", "--checkpoint", checkpoint,
               "--episodes", "100", "--num_envs", "50", "--export-dir", str(tmp_path), "--no-progress"])
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["runtime"] == "isaaclab" and metrics["physics"].startswith("NewtonCfg")
    embedded = json.loads((Path(checkpoint).parent / "exported" / "metrics.json").read_text())
    # the hand ends far closer than where it starts, and about where the embedded runtime ends
    assert metrics["mean_final_error_m"] < 0.5 * baseline["mean_final_error_m"], (metrics, baseline)
    assert metrics["mean_final_error_m"] < 1.5 * embedded["mean_final_error_m"] + 0.01, (metrics, embedded)
