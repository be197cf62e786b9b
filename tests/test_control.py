"""The control core's rules, tried as a hostile local user would: overrides that carry code or break limits, job
limits, tampered job records, killed supervisors, paths that leave the runs folder. Real processes and files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from roarm_lab.control import rules
from roarm_lab.control.errors import ControlError, LimitError
from roarm_lab.control.jobs import JobLimitError
from roarm_lab.control.lab import Lab
from roarm_lab.control.layout import ProjectPaths
from roarm_lab.control.process import running, start_ticks
from roarm_lab.control.runs import job_status
from roarm_lab.control.settings import LabSettings
from roarm_lab.rl.overrides import OverrideError

PY = sys.executable
TASK = "RoArm-Reach-v0"
SLEEP = [PY, "-c", "import time; time.sleep(300)"]


@pytest.fixture
def lab(tmp_path):
    lab = Lab(LabSettings(paths=ProjectPaths.at(None, tmp_path / "logs")))
    yield lab
    for job in lab.store.all():
        if lab.store.counts_as_running(job):
            lab.store.stop(job.id, wait_s=10)


@pytest.fixture
def stranger():
    """A process the control plane did not start (what a tampered record points at)."""
    proc = subprocess.Popen(SLEEP)
    yield proc
    proc.kill()
    proc.wait()


# ---------------------------------------------------------------------------- overrides are data
@pytest.mark.parametrize("override, names", [
    ("agent.critic.distribution_cfg={class_name:'os:chmod',mode:511}", "distribution_cfg"),  # a None default
    ("agent.actor.distribution_cfg={class_name:'os:system'}", "class_name|configuration object"),
    ("agent.algorithm={class_name:'os:system'}", "configuration object"),
    ("agent.actor.activation='os.system'", "short plain name"),
    ("agent.algorithm.schedule='builtins:exec'", "short plain name"),
    ("agent.actor.activation=${oc.env:HOME}", "short plain name"),
    ("env.commands.ee_target.joint_box={base:[0.1,0.2],func:'os:system'}", "no key|names code"),
    ("agent.actor.hidden_dims=[64,'x']", "whole number"),
    ("agent.algorithm.learning_rate=inf", "finite number"),
    ("agent.clip_actions={a:1}", "finite number"),
    ("agent.max_iterations=1.5", "whole number"),
    ("env.scene.robot=null", "cannot be null"),
])
def test_a_face_override_cannot_carry_code_or_replace_a_config_object(override, names):
    with pytest.raises(OverrideError, match=names):
        rules.face_task_configs(TASK, [override])


def test_the_keyboard_keeps_full_power_and_a_face_keeps_the_data_it_needs():
    """The same parser, two modes: train.py's user may set a distribution; a face may set numbers, names, lists and
    mappings of data, and remove a term."""
    from roarm_lab.rl.run_setup import load_task_configs

    _, agent, _ = load_task_configs(TASK, ["agent.critic.distribution_cfg={class_name:GaussianDistribution,"
                                           "init_std:1.0,std_type:log}"])
    assert agent.critic.distribution_cfg == {"class_name": "GaussianDistribution", "init_std": 1.0, "std_type": "log"}
    env, agent, applied = rules.face_task_configs(TASK, [
        "agent.algorithm.learning_rate=3e-4", "agent.actor.hidden_dims=[32,32]", "agent.algorithm.schedule=fixed",
        "env.commands.ee_target.joint_box={base:[0.3,0.3]}", "env.events.action_latency=null",
        "agent.clip_actions=2", "agent.actor.obs_normalization=false"])
    assert agent.algorithm.learning_rate == 3e-4 and agent.actor.hidden_dims == [32, 32]
    assert agent.algorithm.schedule == "fixed" and agent.clip_actions == 2.0 and not agent.actor.obs_normalization
    assert list(env.commands.ee_target.joint_box["base"]) == [0.3, 0.3] and env.events.action_latency is None
    assert len(applied) == 7


@pytest.mark.parametrize("override, key, allowed", [
    ("env.scene.num_envs=9000", "env.scene.num_envs", "1 to 8192"),
    ("agent.max_iterations=1000000000", "agent.max_iterations", "1 to 100000"),
    ("agent.save_interval=1", "agent.save_interval", "10 to 100000"),
    ("agent.actor.hidden_dims=[100000,100000]", "agent.actor.hidden_dims", "1 to 2048"),
    ("env.sim.dt=1e-9", "env.sim.dt", "0.0001 to 0.1"),
])
def test_limits_are_checked_on_the_finished_config_and_name_the_key_and_range(override, key, allowed):
    with pytest.raises(LimitError, match=rf"{key} must be .* from {allowed}"):
        rules.face_task_configs(TASK, [override])


def test_an_argument_in_range_cannot_be_overridden_out_of_range(lab):
    """num_envs=8 is allowed, and an override cannot make it 9000 behind the argument's back (or the reverse)."""
    with pytest.raises(LimitError, match="env.scene.num_envs"):
        lab.training.start_training(TASK, None, 10, ["env.scene.num_envs=9000"], "", None)
    with pytest.raises(LimitError, match="num_envs must be a whole number from 1 to 8192"):
        lab.training.start_training(TASK, 9000, 10, [], "", None)
    assert lab.store.all() == []


# ---------------------------------------------------------------------------- job limits
def test_one_training_at_a_time_across_threads_and_processes(lab, tmp_path):
    """Six starts at once, three from this process's threads and three from other processes: one job starts."""
    outcomes: list[str] = []

    def start() -> None:
        try:
            outcomes.append(lab.store.start("train", SLEEP, cwd=tmp_path).id)
        except (JobLimitError, ControlError) as err:
            outcomes.append(f"refused: {err}")

    code = ("import sys; from roarm_lab.control.jobs import JobStore; from roarm_lab.control.layout import "
            "ProjectPaths\ntry:\n    JobStore(ProjectPaths.at(None, sys.argv[1])).start('train', ['sleep', '300'], "
            "cwd='.')\n    print('started')\nexcept ValueError as err:\n    print('refused:', err)")
    others = [subprocess.Popen([PY, "-c", code, str(lab.paths.logs)], stdout=subprocess.PIPE, text=True)
              for _ in range(3)]
    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes += [p.communicate(timeout=60)[0].strip() for p in others]
    started = [o for o in outcomes if not o.startswith("refused")]
    assert len(started) == 1, outcomes
    assert all("at most 1" in o or "being started" in o for o in outcomes if o.startswith("refused"))
    assert len([j for j in lab.store.all() if lab.store.counts_as_running(j)]) == 1


def test_evaluations_run_one_per_run_and_two_at_a_time(lab, tmp_path):
    runs = [lab.paths.runs / "roarm_reach" / name for name in ("a", "b", "c")]
    for run in runs:
        run.mkdir(parents=True)
    lab.store.start("evaluate", SLEEP, cwd=tmp_path, run_dir=runs[0])
    with pytest.raises(JobLimitError, match="already running on this run"):
        lab.store.start("export", SLEEP, cwd=tmp_path, run_dir=runs[0])
    lab.store.start("export", SLEEP, cwd=tmp_path, run_dir=runs[1])
    with pytest.raises(JobLimitError, match="at most 2"):
        lab.store.start("evaluate", SLEEP, cwd=tmp_path, run_dir=runs[2])


# ---------------------------------------------------------------------------- lost supervisors
def test_a_supervisor_killed_with_9_makes_its_job_lost_with_the_reason_and_frees_the_limit(lab, tmp_path):
    record = lab.store.start("train", SLEEP, cwd=tmp_path)
    live = lab.store.wait(record.id, ("running",))
    os.kill(live.pid, signal.SIGKILL)  # as if the OOM killer took the supervisor
    lost = lab.store.wait(record.id, ("lost",), timeout_s=10)
    end = time.monotonic() + 10  # a reader may settle it first; the supervisor's reaper then says how it ended
    while "SIGKILL" not in lab.store.load(record.id).error and time.monotonic() < end:
        time.sleep(0.05)
    lost = lab.store.load(record.id)
    assert "was killed by SIGKILL" in lost.error and lost.ended is not None
    on_disk = json.loads(lab.paths.job_record(record.id).read_text())
    assert on_disk["state"] == "lost"  # settled, not derived anew at every read
    end = time.monotonic() + 10  # the command is told to stop when its supervisor dies: nothing runs unsupervised
    while running(live.child_pid, live.child_start) and time.monotonic() < end:
        time.sleep(0.05)
    assert not running(live.child_pid, live.child_start)
    assert lab.store.start("train", SLEEP, cwd=tmp_path).id  # the limit counts it no more


def test_a_job_stopped_the_moment_it_was_started_stops(lab, tmp_path):
    """A chat stops a training it just started: the record has no pid yet, the stop waits for it (not "ended")."""
    record = lab.store.start("train", SLEEP, cwd=tmp_path)
    stopped = lab.store.stop(record.id)
    assert stopped.state == "stopped", stopped
    assert not running(stopped.child_pid, stopped.child_start)


def test_a_lost_job_whose_command_survives_still_counts_and_can_be_stopped(lab, tmp_path):
    """A command that ignores SIGTERM outlives its supervisor: the job is lost, yet still one training."""
    stubborn = [PY, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"]
    record = lab.store.start("train", stubborn, cwd=tmp_path)
    live = lab.store.wait(record.id, ("running",))
    time.sleep(0.5)  # the command has set its handler
    os.kill(live.pid, signal.SIGKILL)
    lost = lab.store.wait(record.id, ("lost",), timeout_s=10)
    assert lab.store.counts_as_running(lost)
    assert "still running" in job_status(lab.paths, lab.store, record.id)["error"]
    with pytest.raises(JobLimitError):
        lab.store.start("train", SLEEP, cwd=tmp_path)
    lab.store.stop(record.id, signum=signal.SIGKILL)
    assert not running(live.child_pid, live.child_start)


def test_a_record_without_a_supervisor_settles_as_lost_after_the_start_grace(lab, tmp_path, monkeypatch):
    from roarm_lab.control import jobs

    record = jobs.JobRecord(id=jobs.new_job_id("train"), kind="train", command=["x"], cwd=str(tmp_path),
                            created=time.time() - jobs.START_GRACE_S - 1)
    lab.store.save(record)
    assert lab.store.load(record.id).state == "lost" and "never started" in lab.store.load(record.id).error


# ---------------------------------------------------------------------------- tampered records
def _tampered(lab: Lab, kind: str, victim: subprocess.Popen, **fields) -> str:
    from roarm_lab.control.jobs import JobRecord, new_job_id

    record = JobRecord(id=new_job_id(kind), kind=kind, command=["sleep"], cwd="/", state="running",
                       pid=victim.pid, pid_start=start_ticks(victim.pid), child_pid=victim.pid,
                       child_start=start_ticks(victim.pid))
    data = {**record.to_json(), **fields}
    lab.paths.jobs.mkdir(parents=True, exist_ok=True)
    lab.paths.job_record(record.id).write_text(json.dumps(data))
    return record.id


def test_a_tampered_record_cannot_get_a_stranger_signalled(lab, stranger):
    """The record names a live process with its true start time: it is not the core's, so stop and the e-stop leave
    it alone, and the job is settled as lost."""
    job_id = _tampered(lab, "train", stranger)
    real_id = _tampered(lab, "real", stranger)
    with pytest.raises(ValueError, match="not running"):
        lab.training.stop(job_id)
    result = lab.emergency_stop()
    assert result.real_jobs_signalled == []
    time.sleep(0.3)
    assert stranger.poll() is None  # still alive: no SIGTERM, no SIGINT, no SIGUSR1 reached it
    assert lab.store.load(job_id).state == "lost" and lab.store.load(real_id).state == "lost"


def test_a_tampered_record_cannot_point_the_log_or_run_folder_outside(lab, stranger, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the shadow file\n")
    job_id = _tampered(lab, "evaluate", stranger, log=str(secret), state="failed")
    status = job_status(lab.paths, lab.store, job_id)
    assert "the shadow file" not in json.dumps(status) and status["log"].endswith(f"{job_id}.log")
    outside = _tampered(lab, "train", stranger, run_dir=str(tmp_path), state="failed")
    assert outside not in [j.id for j in lab.store.all()]
    with pytest.raises(ValueError, match="outside the runs folder"):
        lab.store.load(outside)


# ---------------------------------------------------------------------------- paths that leave the runs folder
def test_an_exported_folder_that_is_a_symlink_out_of_the_runs_folder_is_not_served(lab, tmp_path, export_dir):
    import shutil

    outside = tmp_path / "outside" / "exported"
    shutil.copytree(export_dir, outside)
    run = lab.paths.runs / "roarm_reach" / "2026-01-01_00-00-00_evil"
    run.mkdir(parents=True)
    (run / "exported").symlink_to(outside)
    for attempt in (lambda: lab.serve(run.name), lambda: lab.real.run(run.name, [[0.25, 0.0, 0.2]], True, False),
                    lambda: lab.export_of(str(run / "exported"))):
        with pytest.raises(ValueError, match="outside the (project's )?run"):
            attempt()
    assert not lab.gateway.running()


def test_the_simulator_links_numbers_are_checked_before_anything_is_sent(lab):
    """The faces' schemas and forms read these ranges; the core checks them again whatever a face sent."""
    for kind, fields, says in (("run_policy", {"max_steps": 10**6}, "max_steps must be a whole number from 1 to 3000"),
                               ("render", {"width": 10**5}, "width"), ("record", {"episodes": 0}, "episodes")):
        with pytest.raises(LimitError, match=says):
            lab.sim.call(kind, **fields)
    with pytest.raises(LimitError, match="steps"):
        lab.sim.move([0.0] * 5, 10**4, relative=False)


def test_a_run_resumes_in_its_own_folder_up_to_the_new_total_and_echoes_its_plan(lab):
    first = lab.training.start_training("RoArm-Reach-v0", 16, 2, [], "resume", None)
    assert first.plan.max_iterations == 2 and first.plan.num_envs == 16 and first.plan.expected_minutes >= 0
    assert lab.store.wait(first.job_id, timeout_s=300).state == "succeeded"
    run = lab.run(first.job_id)
    with pytest.raises(ControlError, match="above 2"):
        lab.training.resume(run.id, 2)  # nothing left to train
    again = lab.training.resume(run.id, 4)
    assert again.run_id == run.id and again.plan.from_iteration == 1 and again.plan.max_iterations == 4
    assert lab.store.wait(again.job_id, timeout_s=300).state == "succeeded"
    status = lab.training.status(again.job_id, tail=0)
    assert status.run_id == run.id and status.newest_checkpoint.endswith("model_3.pt")
    assert [p.name for p in lab.paths.runs.glob("*/*")] == [run.id]  # no second folder
    assert json.loads(run.files.record.read_text())["num_envs"] == 16  # resumed with the run's own settings


def test_a_log_page_never_reads_through_a_link_planted_in_a_run_folder(lab, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    run = lab.paths.runs / "roarm_reach" / "2026-01-01_00-00-00_planted"
    run.mkdir(parents=True)
    (run / "train_console.log").symlink_to(secret)
    with pytest.raises(ValueError, match="outside"):
        lab.log_page("job", run.name, 10, 0)


def test_training_never_writes_through_a_link_planted_in_a_run_folder(tmp_path):
    from roarm_lab.utils.io import append_text

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (tmp_path / "progress.jsonl").symlink_to(victim)
    with pytest.raises(OSError):
        append_text(tmp_path / "progress.jsonl", "{}\n")
    assert victim.read_text() == "keep me\n"


def test_the_emergency_stop_latches_for_a_bridge_started_by_hand_and_not_for_a_dead_one(lab):
    """A simulation-only face: no --allow-real-arm, no real-arm job. A run_real.py in a terminal announces itself
    beside the stop file; the stop then latches. Its file left behind by a killed bridge does not count."""
    from roarm_lab.real.presence import announced, folder

    assert lab.emergency_stop().latched is False and not lab.settings.stop_file.exists()
    with announced(lab.settings.stop_file):
        assert lab.emergency_stop().latched is True and lab.settings.stop_file.exists()
    lab.settings.stop_file.unlink()
    dead = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (folder(lab.settings.stop_file) / f"{pid}.json").write_text(json.dumps({"pid": pid, "start_ticks": 1}))
    assert lab.emergency_stop().latched is False


def test_a_run_is_deleted_only_when_no_job_uses_it_and_only_inside_the_runs_folder(lab, tmp_path):
    run_dir = lab.paths.runs / "roarm_reach" / "2026-01-01_00-00-00_old"
    run_dir.mkdir(parents=True)
    (run_dir / "model_0.pt").write_bytes(b"x")
    job = lab.store.start("evaluate", SLEEP, cwd=tmp_path, run_dir=run_dir)
    lab.store.wait(job.id, ("running",))
    with pytest.raises(ControlError, match=f"in use by job {job.id}"):
        lab.training.delete(lab.run(run_dir.name))
    lab.store.stop(job.id)
    assert lab.training.delete(lab.run(run_dir.name)) == run_dir.name and not run_dir.exists()
    assert (lab.paths.runs / "roarm_reach").is_dir()  # the experiment folder stays


def test_a_face_names_a_preset_by_name_and_its_entries_pass_the_faces_rules(lab):
    with pytest.raises(ValueError, match="configs/presets"):
        lab.training.start_training("RoArm-Reach-v0", 16, 1, [], "", None, preset="../../etc/passwd")
    with pytest.raises(ValueError, match="presets: .*reach_no_randomization"):
        lab.training.start_training("RoArm-Reach-v0", 16, 1, [], "", None, preset="nope")
    started = lab.training.start_training("RoArm-Reach-v0", 16, 1, [], "", None, preset="reach_no_randomization")
    assert "env.events.action_latency=None" in started.plan.overrides
    lab.store.stop(started.job_id)
