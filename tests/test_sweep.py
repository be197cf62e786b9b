"""Sweeps on Ray Tune (scripts/sweep.py) and the entropy schedule: search spaces are data checked by the faces'
rules; a real local Ray runs real trainings as trials, the table and the best overrides come out, train.py accepts
them, and a sweep interrupted with Ctrl-C continues with --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from roarm_lab.rl.overrides import OverrideError
from roarm_lab.rl.schedules import ScheduleClock, entropy_at, entropy_hold, entropy_schedule
from roarm_lab.sweep.space import check_space, parse_space, read_space
from test_panel_browser import browser  # noqa: F401  (the fixture: Debian's chromium through playwright)

ROOT = Path(__file__).resolve().parents[1]
TASK = "RoArm-Reach-v0"
SWEEP = [sys.executable, str(ROOT / "scripts" / "sweep.py")]


def _has_ray() -> bool:
    try:
        import optuna  # noqa: F401
        import ray.tune  # noqa: F401
    except ImportError:
        return False
    return True


needs_ray = pytest.mark.skipif(not _has_ray(), reason='Ray Tune and Optuna are the sweep extra: pip install -e ".[sweep]"')


# ---------------------------------------------------------------------- the search space
def test_the_shipped_space_parses_and_every_value_it_can_draw_passes_the_faces_rules():
    space = read_space(ROOT / "configs" / "sweeps" / f"{TASK}.yaml")
    assert {d.kind for d in space.dimensions} == {"loguniform", "uniform", "randint", "choice"}
    check_space(TASK, space, [])  # raises on any refused value
    assert space.tokens({d.key: d.values[0] for d in space.dimensions})[0] == "agent.algorithm.learning_rate=0.0003"


@pytest.mark.parametrize("spec, words", [
    ("__import__('os').system('id')", ["must be one of", "loguniform("]),
    ("loguniform(0, 1)", ["must be above 0"]),
    ("uniform(2, 1)", ["low 2 must be below high 1"]),
    ("randint(1.5, 4)", ["two whole numbers"]),
    ("uniform(1e-3, nan)", ["finite number"]),
    ("loguniform(1e-4)", ["two numbers"]),
    ("loguniform(1e-4, 1e999)", ["finite number"]),
])
def test_a_distribution_is_one_of_four_names_with_literal_numbers(spec, words):
    with pytest.raises(OverrideError) as err:
        parse_space({"space": {"agent.algorithm.learning_rate": spec}}, "f.yaml")
    assert all(w in str(err.value) for w in words), err.value


@pytest.mark.parametrize("key, spec, words", [
    ("agent.algorithm.class_name", "choice(PPO, os)", ["agent.algorithm.class_name", "refused"]),
    ("agent.actor.distribution_cfg", "choice(x)", ["agent.actor.distribution_cfg", "refused"]),
    ("env.scene.num_envs", "randint(1, 100000)", ["env.scene.num_envs=100000", "8192"]),
    ("agent.algorithm.no_such_setting", "uniform(0, 1)", ["no_such_setting"]),
    ("agent.save_interval", "randint(1, 20)", ["agent.save_interval=1", "10"]),
])
def test_a_space_that_reaches_past_the_faces_rules_is_refused_before_any_trial(key, spec, words):
    space = parse_space({"space": {key: spec}}, "f.yaml")
    with pytest.raises(OverrideError) as err:
        check_space(TASK, space, [])
    assert all(w in str(err.value) for w in words), err.value


def test_numbers_are_read_as_written_and_a_whole_number_setting_is_not_drawn_continuously():
    space = parse_space({"space": {"agent.algorithm.learning_rate": "loguniform(3e-4, 3.0E-3)",
                                   "agent.algorithm.num_mini_batches": "randint(2, 8)"}}, "f.yaml")
    assert space.dimensions[0].values == (3e-4, 3e-3) and space.dimensions[1].values == (2, 8)
    continuous = parse_space({"space": {"agent.algorithm.num_mini_batches": "uniform(2, 8)"}}, "f.yaml")
    with pytest.raises(OverrideError, match="whole number .* randint"):
        check_space(TASK, continuous, [])


def test_a_space_file_cannot_build_python_objects(tmp_path):
    bad = tmp_path / "space.yaml"
    bad.write_text("space: !!python/object/apply:os.system ['id']\n")
    with pytest.raises(OverrideError, match="not valid YAML"):
        read_space(bad)


# ---------------------------------------------------------------------- the entropy schedule
def test_the_entropy_schedule_interpolates_and_holds_its_ends():
    schedule = entropy_schedule([[0, 0.006], [500, 0.006], [900, 0.0]])
    assert [entropy_at(schedule, i) for i in (0, 499, 500, 700, 900, 5000)] == pytest.approx(
        [0.006, 0.006, 0.006, 0.003, 0.0, 0.0])
    for bad in ([[10, 0.1], [5, 0.0]], [[0, -0.1]], [[0, "x"]], []):
        with pytest.raises(ValueError):
            entropy_schedule(bad)


def test_the_runner_applies_the_schedule_before_each_update(make_task_env):
    from roarm_lab.registry import load_cfg_from_registry
    from roarm_lab.rl.runner import RoArmRunner, to_rsl_rl_dict
    from roarm_lab.rl.vecenv import RslRlVecEnvWrapper

    agent = load_cfg_from_registry(TASK, "rsl_rl_cfg_entry_point")
    agent.actor.hidden_dims = agent.critic.hidden_dims = [16]
    agent.num_steps_per_env = 4
    cfg = to_rsl_rl_dict(agent) | {"entropy_schedule": [[0, 0.04], [2, 0.0]]}
    runner = RoArmRunner(RslRlVecEnvWrapper(make_task_env(4)), cfg, log_dir=None, device="cpu", total_iterations=4,
                         show_progress=False)
    seen = []  # the coefficient PPO's loss read in each iteration's update (it holds until the next one)
    runner.logger.after_iteration = lambda it: seen.append(runner.alg.entropy_coef)
    runner.learn(3)
    assert seen == pytest.approx([0.04, 0.02, 0.0])


def test_the_hold_stops_the_schedule_s_clock_until_the_task_succeeds_and_changes_nothing_for_an_early_success():
    held = ScheduleClock(0, entropy_hold([2, 0.5]))
    for success in (None, 0.0, 0.1, 0.2, 0.49):
        held.advance(success)
    assert held.value == 2 and not held.opened  # it ran to the hold, then waited
    held.advance(0.5)
    held.advance(0.0)  # once open it stays open: a bad iteration later does not stop it again
    assert (held.value, held.opened) == (4, True)
    early, free = ScheduleClock(0, entropy_hold([2, 0.5])), ScheduleClock(0, None)
    for success in (0.0, 0.6, 0.0, 0.0, 0.0):
        early.advance(success)
        free.advance(success)
        assert early.value == free.value  # success before the hold: the schedule as without it
    for bad in ([2], [-1, 0.5], [2, 0.0], [2, 1.5], "x"):
        with pytest.raises(ValueError):
            entropy_hold(bad)


def test_a_held_schedule_waits_in_the_runner_and_its_clock_survives_a_checkpoint(make_task_env, tmp_path):
    from roarm_lab.registry import load_cfg_from_registry
    from roarm_lab.rl.runner import RoArmRunner, to_rsl_rl_dict
    from roarm_lab.rl.vecenv import RslRlVecEnvWrapper

    agent = load_cfg_from_registry(TASK, "rsl_rl_cfg_entry_point")
    agent.actor.hidden_dims = agent.critic.hidden_dims = [16]
    agent.num_steps_per_env = 4
    # a success of 1.0 within 3 iterations of 4 steps is out of reach: the clock must wait at iteration 1
    cfg = to_rsl_rl_dict(agent) | {"entropy_schedule": [[0, 0.04], [2, 0.0]], "entropy_hold": [1, 1.0]}
    env = RslRlVecEnvWrapper(make_task_env(4))
    runner = RoArmRunner(env, cfg, log_dir=None, device="cpu", total_iterations=4, show_progress=False)
    seen = []
    runner.logger.after_iteration = lambda it: seen.append(runner.alg.entropy_coef)
    runner.learn(3)
    assert seen == pytest.approx([0.04, 0.02, 0.02])
    runner.save(str(tmp_path / "model_3.pt"))
    resumed = RoArmRunner(env, cfg, log_dir=None, device="cpu", total_iterations=4, show_progress=False)
    resumed.load(str(tmp_path / "model_3.pt"))
    assert (resumed._clock.value, resumed._clock.opened) == (1, False)  # not the iteration (3): still waiting


@pytest.mark.parametrize("task", ["RoArm-Reach-v0", "RoArm-Lift-v0"])
def test_the_schedule_is_an_override_of_every_task_s_agent(task):
    """A field of the agents' common base, so the command line can set it (before, only an edited agent file)."""
    from roarm_lab.rl.run_setup import load_task_configs

    _, agent, _ = load_task_configs(task, ["agent.entropy_schedule=[[0,0.006],[500,0.006],[900,0.0]]"])
    assert agent.entropy_schedule == [[0, 0.006], [500, 0.006], [900, 0.0]]
    default = load_task_configs(task, [])[1].entropy_schedule  # the agent file's own: none for reach, lift's decay
    assert default != agent.entropy_schedule and (task != "RoArm-Reach-v0" or default is None)


def test_a_bad_schedule_is_one_line_naming_the_key():
    from roarm_lab.rl.config_checks import check_run_configs
    from roarm_lab.registry import load_cfg_from_registry

    env = load_cfg_from_registry("RoArm-Lift-v0", "env_cfg_entry_point")
    agent = load_cfg_from_registry("RoArm-Lift-v0", "rsl_rl_cfg_entry_point")
    agent.entropy_schedule = [[100, 0.01], [50, 0.0]]
    with pytest.raises(OverrideError, match="agent.entropy_schedule needs increasing iterations"):
        check_run_configs(env, agent)
    agent.entropy_schedule, agent.entropy_hold = None, [150, 2.0]
    with pytest.raises(OverrideError, match=r"agent.entropy_hold needs .* success in \(0, 1\].*agent.entropy_hold=\["):
        check_run_configs(env, agent)
    agent.entropy_hold = [150, 0.05]  # a hold of no schedule would be silently ignored
    with pytest.raises(OverrideError, match="agent.entropy_hold holds the entropy schedule, and this agent has none"):
        check_run_configs(env, agent)


# ---------------------------------------------------------------------- Ray
@needs_ray
@pytest.mark.parametrize("record, words", [
    ({"num_samples": 10**9}, "num_samples must be a number from 1 to 100000"),
    ({"cpus_per_trial": 1e6}, "cpus_per_trial"),
    ({"space": {"agent.algorithm.class_name": "choice(os)"}}, "refused"),
    ({"fixed": ["agent.algorithm.class_name=os"]}, "names code"),
    ({"device": "cuda; rm -rf /"}, "device"),
    ({"log_root": "/etc"}, "resume with --log_root"),
])
def test_a_damaged_sweep_record_is_refused_on_resume_in_one_line(tmp_path, record, words):
    folder = tmp_path / "sweeps" / "s"
    folder.mkdir(parents=True)
    good = {"task": TASK, "space": {"agent.algorithm.gamma": "uniform(0.97, 0.99)"}, "target": 0.97, "fixed": [],
            "num_samples": 2, "max_iterations": 3, "grace_iterations": 1, "reduction_factor": 3.0, "seed": 1,
            "cpus_per_trial": 2.0, "gpus_per_trial": 0.0, "device": "cpu", "runtime": "embedded",
            "log_root": str((tmp_path / "runs").resolve()), "state": "interrupted"}
    (folder / "sweep.json").write_text(json.dumps({**good, **record}))
    out = subprocess.run([*SWEEP, "--resume", "s", "--sweep_root", str(tmp_path / "sweeps"), "--log_root",
                          str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not (folder / "tune").exists()


def test_resume_takes_a_name_under_the_sweep_root_only(tmp_path, monkeypatch):
    from roarm_lab.sweep.cli import _sweep_folder, build_parser

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "sweep.json").write_text("{}")
    args = build_parser().parse_args(["--resume", "elsewhere", "--sweep_root", str(tmp_path / "sweeps")])
    monkeypatch.chdir(tmp_path)  # a folder of that name in the working directory is not the sweep
    with pytest.raises(OverrideError, match="no sweep there"):
        _sweep_folder(args, TASK)


def test_without_the_extra_the_sweep_names_the_install_command(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; sys.modules['optuna'] = None; "
            "from roarm_lab.sweep.cli import main; sys.exit(main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, "--task", TASK, "--sweep_root", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert 'pip install -e ".[sweep]"' in out.stderr and "Traceback" not in out.stderr
    assert not any(tmp_path.iterdir())


def _sweep(tmp_path: Path, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*SWEEP, "--sweep_root", str(tmp_path / "sweeps"), "--log_root", str(tmp_path / "runs"),
                             *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kw)


@pytest.mark.slow
@needs_ray
def test_a_two_trial_sweep_writes_its_table_and_best_overrides_that_train_accepts(tmp_path):
    # the command, with the first rung at the budget: no trial is stopped early, both run folders finish
    proc = _sweep(tmp_path, "--task", TASK, "--num-samples", "2", "--max-iterations", "3", "--grace-iterations", "3",
                  "--name", "s")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    folder = tmp_path / "sweeps" / "s"
    table = json.loads((folder / "trials.json").read_text())
    assert len(table["trials"]) == 2 and all(t["state"] == "complete" for t in table["trials"])
    assert [t["baseline"] for t in table["trials"]] == [True, False]  # the task's own values run first
    assert (folder / "trials.csv").read_text().count("\n") == 3
    assert json.loads((folder / "sweep.json").read_text())["state"] == "finished"
    budget = 3 * 1024 * 32  # the default batch: 1024 envs x 32 steps
    for trial in table["trials"]:  # each trial is a normal run folder, finished, with its drawn settings
        run = Path(trial["run_dir"])
        assert trial["env_steps"] >= budget and run.parent.parent == tmp_path / "runs"
        record = json.loads((run / "run.json").read_text())
        assert record["final_checkpoint"] and (run / record["final_checkpoint"]).is_file()
        agent = yaml.safe_load((run / "agent.yaml").read_text())
        assert agent["algorithm"]["learning_rate"] == pytest.approx(trial["agent.algorithm.learning_rate"])
        assert agent["num_steps_per_env"] == trial["agent.num_steps_per_env"]
    best = folder / "best_overrides.yaml"
    values = yaml.safe_load(best.read_text())
    assert set(values) == set(table["keys"])
    train = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--task", TASK, "--preset", str(best),
                            "--num_envs", "16", "--max_iterations", "1", "--log_root", str(tmp_path / "again"),
                            "--no-progress"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-2000:]
    again = next((tmp_path / "again").glob("*/*/agent.yaml"))
    assert yaml.safe_load(again.read_text())["algorithm"]["gamma"] == pytest.approx(values["agent.algorithm.gamma"])


@pytest.mark.slow
@needs_ray
def test_a_sweep_stopped_with_ctrl_c_continues_with_resume(tmp_path):
    proc = _sweep(tmp_path, "--task", TASK, "--num-samples", "3", "--max-iterations", "4", "--name", "r",
                  "--grace-iterations", "4", "env.scene.num_envs=256")
    trials = tmp_path / "sweeps" / "r" / "trials.json"
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:  # Ctrl-C once the first trial has finished
        rows = json.loads(trials.read_text())["trials"] if trials.is_file() else []
        if any(r["state"] == "complete" for r in rows):
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    record = json.loads((tmp_path / "sweeps" / "r" / "sweep.json").read_text())
    assert proc.returncode == 130 and record["state"] == "interrupted", out[-3000:]
    assert "--resume r" in out
    proc = _sweep(tmp_path, "--resume", "r")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    rows = json.loads(trials.read_text())["trials"]
    assert len(rows) == 3 and all(r["state"] == "complete" for r in rows), rows
    assert json.loads((tmp_path / "sweeps" / "r" / "sweep.json").read_text())["state"] == "finished"


# ---------------------------------------------------------------------- the control core and MCP
def test_a_sweep_counts_as_a_training_and_a_face_cannot_reach_past_the_rules(tmp_path):
    from roarm_lab.control.errors import ControlError, LimitError
    from roarm_lab.control.jobs import JobLimitError
    from roarm_lab.control.lab import Lab
    from roarm_lab.control.layout import ProjectPaths
    from roarm_lab.control.settings import LabSettings

    lab = Lab(LabSettings(paths=ProjectPaths.at(None, tmp_path / "logs")))
    for overrides, words in ((["agent.algorithm.class_name=os"], "names code"),
                             (["env.scene.num_envs=100000"], "8192"),
                             (["--log_root=/etc"], "must look like")):
        with pytest.raises(ControlError, match=words):
            lab.sweeps.start(TASK, 2, 3, overrides)
    with pytest.raises(LimitError, match="num_samples must be a whole number from 1 to 256"):
        lab.sweeps.start(TASK, 0, 3, [])
    with pytest.raises(ControlError, match="has no search space"):
        lab.sweeps.start("RoArm-Lift-v0", 2, 3, [])
    training = lab.store.start("train", [sys.executable, "-c", "import time; time.sleep(300)"], cwd=tmp_path)
    try:
        with pytest.raises(JobLimitError, match="at most 1"):
            lab.sweeps.start(TASK, 2, 3, [])
    finally:
        lab.store.stop(training.id, wait_s=10)
    with pytest.raises(ControlError, match="no sweep 'nothing'"):
        lab.sweeps.status("nothing")
    # a sweep folder's files are data on disk: damaged ones are read field by field, never trusted
    poisoned = tmp_path / "logs" / "sweeps" / "poisoned"
    poisoned.mkdir(parents=True)
    (poisoned / "sweep.json").write_text(json.dumps({"state": 5, "num_samples": "many", "task": ["x"]}))
    (poisoned / "trials.json").write_text(json.dumps({"trials": [5, {"trial": {"a": 1}, "state": None,
                                                                     "success_rate": "high", "run_dir": 7}],
                                                      "keys": "agent.x", "target": "high"}))
    status = lab.sweeps.status("poisoned")
    assert status.trials_total == 1 and status.trials[0].success_rate is None and status.num_samples is None
    (poisoned / "trials.json").write_text(json.dumps({"trials": 5}))
    assert lab.sweeps.status("poisoned").trials == []
    with pytest.raises(ControlError, match="is a train job, not a sweep"):
        lab.sweeps.status(training.id)
    assert [p.name for p in (tmp_path / "logs" / "sweeps").iterdir()] == ["poisoned"]  # no refused start made one


@pytest.mark.slow
@needs_ray
def test_mcp_starts_a_sweep_follows_it_and_lists_its_trials_as_runs(tmp_path):
    import anyio

    from mcp_helpers import call, session

    logs = tmp_path / "logs"

    async def main():
        async with session(logs) as client:
            started = await call(client, "start_sweep", num_samples=2, max_iterations=2,
                                 overrides=["env.scene.num_envs=64"], name="chat")
            assert started["kind"] == "sweep"
            refused = await client.call_tool("start_training", {"max_iterations": 2})
            assert refused.is_error and "at most 1" in refused.content[0].text
            done = {"done": False}
            while not done["done"]:
                done = await call(client, "wait_for_job", ref=started["job_id"], timeout_s=120)
            status = await call(client, "sweep_status", sweep=started["job_id"])
            runs = await call(client, "list_runs")
            return done, status, runs

    done, status, runs = anyio.run(main)
    assert done["state"] == "succeeded" and status["sweep_state"] == "finished", (done, status)
    states = [t["state"] for t in status["trials"]]  # the baseline completes; ASHA may stop the other at its rung
    assert len(states) == 2 and states[0] == "complete" and states[1] in ("complete", "stopped early (ASHA)"), states
    assert set(status["trials"][0]["values"]) == {d.key for d in read_space(
        ROOT / "configs" / "sweeps" / f"{TASK}.yaml").dimensions}
    listed = json.dumps(runs)
    assert all(t["run_id"] in listed for t in status["trials"])
    assert (ROOT / status["best_overrides"]).is_file() or Path(status["best_overrides"]).is_file()


@pytest.mark.slow
@needs_ray
def test_the_panel_starts_a_sweep_and_lists_its_trials_whose_curves_open(tmp_path, browser):
    from panel_helpers import panel_server, request

    shots = Path(os.environ["ROARM_PANEL_SCREENSHOTS"]) if os.environ.get("ROARM_PANEL_SCREENSHOTS") else tmp_path
    with panel_server(tmp_path / "logs") as (url, _):
        page = browser.new_page(viewport={"width": 1480, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(url)
        page.wait_for_selector("#link[data-ok=yes]")
        assert page.inner_text("#sweeps") == "No sweeps yet."
        page.fill("#iterations", "2")
        page.fill("#trials", "2")
        page.click("details summary")
        page.fill("#overrides", "env.scene.num_envs=64")
        page.click("#sweep")
        page.wait_for_selector(".sweep:has-text('2/2 trials ended')", timeout=300_000)
        page.wait_for_selector(".sweep .badge.finished", timeout=60_000)
        rows = page.locator(".trials tr.link")
        assert rows.count() == 2 and page.locator(".trials .badge.complete").count() >= 1
        trial = rows.first.get_attribute("data-trial")
        rows.first.click()
        page.wait_for_function("(t) => document.querySelector('#curve-run').textContent.endsWith(t)", arg=trial)
        page.wait_for_selector("#curve path.line.success")
        page.screenshot(path=str(shots / "panel_sweep.png"), full_page=True)
        sweeps = request(url, "/api/state")[1]["sweeps"]
        assert len(sweeps) == 1 and sweeps[0]["best_overrides"].endswith("best_overrides.yaml")
        assert not errors, errors


def test_best_overrides_hold_the_sweep_s_fixed_overrides(tmp_path):
    """A sweep run with ``env.scene.num_envs=256`` found its best values at 256 environments: the preset says so,
    instead of naming the fixed overrides in comments that ``--preset`` does not read."""
    from roarm_lab.control.layout import SweepFiles
    from roarm_lab.sweep.space import default_space_file, read_space
    from roarm_lab.sweep.table import write_tables

    space = read_space(default_space_file(TASK))
    row = {"trial": "t1", "state": "complete", "success_rate": 0.98, "env_steps": 1000, "samples_to_target": 900,
           "baseline": False, **{d.key: d.extremes()[0] for d in space.dimensions}}
    files = SweepFiles(tmp_path)
    write_tables(files, [row], space, TASK, ["env.scene.num_envs=256", "agent.algorithm.gamma=0.95", "presets=x"])
    values = yaml.safe_load(files.best_overrides.read_text())
    assert list(values)[:2] == ["env.scene.num_envs", "agent.algorithm.gamma"] and "presets" not in values
    assert values["env.scene.num_envs"] == 256
    assert values["agent.algorithm.gamma"] == row["agent.algorithm.gamma"]  # a drawn value wins over a fixed one
    assert set(values) == {"env.scene.num_envs", "agent.algorithm.gamma"} | {d.key for d in space.dimensions}


def test_the_tasks_own_values_are_the_first_trial_when_the_space_can_draw_them():
    from roarm_lab.rl.run_setup import load_task_configs
    from roarm_lab.sweep.table import markdown, trial_row
    from roarm_lab.sweep.space import defaults_in_space

    space = read_space(ROOT / "configs" / "sweeps" / f"{TASK}.yaml")
    env, agent, _ = load_task_configs(TASK, [])
    baseline = defaults_in_space(space, {"env": env, "agent": agent})
    assert baseline == {"agent.algorithm.learning_rate": agent.algorithm.learning_rate,
                        "agent.algorithm.entropy_coef": agent.algorithm.entropy_coef,
                        "agent.algorithm.num_learning_epochs": agent.algorithm.num_learning_epochs,
                        "agent.algorithm.num_mini_batches": agent.algorithm.num_mini_batches,
                        "agent.algorithm.gamma": agent.algorithm.gamma,
                        "agent.num_steps_per_env": agent.num_steps_per_env}
    _, agent_off, _ = load_task_configs(TASK, ["agent.num_steps_per_env=20"])  # 20 is not among the choices
    assert defaults_in_space(space, {"env": env, "agent": agent_off}) is None
    budget = 1000
    rows = [trial_row("a", "TERMINATED", baseline, {"env_steps": 1000, "iteration": 9, "success_rate": 0.9}, space,
                      budget, baseline=baseline),
            trial_row("b", "TERMINATED", {**baseline, "agent.num_steps_per_env": 16},
                      {"env_steps": 400, "iteration": 3, "success_rate": 0.2}, space, budget, stopped_early=True,
                      baseline=baseline),
            trial_row("c", "TERMINATED", baseline, {"env_steps": 300, "iteration": 2}, space, budget)]
    assert [r["state"] for r in rows] == ["complete", "stopped early (ASHA)", "interrupted"]
    assert [r["baseline"] for r in rows] == [True, False, False]
    assert "| a (defaults) | complete |" in markdown(rows, space)
