"""Jobs: records on disk written by a real supervisor process, stop, orphans, run folders, confinement, overrides."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from roarm_lab.jobs.launch import start_job, stop_job, wait_started
from roarm_lab.jobs.paths import PathError, ProjectPaths
from roarm_lab.jobs.runfiles import error_line, read_tail, training_progress
from roarm_lab.jobs.runs import RunError, find_run, job_status, list_runs, resolve_checkpoint, resolve_export
from roarm_lab.jobs.store import JobError, JobStore, pid_alive, process_start_ticks
from roarm_lab.rl.overrides import OverrideError
from roarm_lab.utils.untrusted import check_overrides

PY = sys.executable


def _wait(store: JobStore, job_id: str, states=("succeeded", "failed", "stopped", "orphaned"), timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        record = store.load(job_id)
        if store.state(record) in states:
            return record
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {store.state(store.load(job_id))}")


@pytest.fixture
def store(tmp_path):
    return JobStore(tmp_path / "jobs")


def test_a_job_records_its_command_pids_and_exit_code(store, tmp_path):
    record = start_job(store, "train", [PY, "-c", "print('hello from the job')"], cwd=tmp_path, task="T")
    done = _wait(store, record.id)
    assert done.state == "succeeded" and done.exit_code == 0 and done.ended >= done.started >= done.created
    assert done.pid and done.child_pid and done.child_pid != done.pid
    assert "hello from the job" in Path(done.log).read_text()
    on_disk = json.loads((store.root / f"{record.id}.json").read_text())
    assert on_disk["command"][-1] == "print('hello from the job')" and on_disk["state"] == "succeeded"


def test_a_failing_job_reports_the_scripts_error_line(store, tmp_path):
    cmd = [PY, "-c", "import sys; print('error: unknown key env.x'); sys.exit(2)"]
    record = start_job(store, "evaluate", cmd, cwd=tmp_path)
    done = _wait(store, record.id)
    assert done.state == "failed" and done.exit_code == 2
    assert error_line(read_tail(Path(done.log))) == "unknown key env.x"


def test_stop_ends_the_command_and_records_stopped(store, tmp_path):
    record = start_job(store, "train", [PY, "-c", "import time; time.sleep(120)"], cwd=tmp_path)
    started = wait_started(store, record.id)
    _wait(store, record.id, states=("running",))
    child = store.load(record.id).child_pid
    stopped = stop_job(store, record.id)
    assert stopped.state == "stopped" and stopped.exit_code == -signal.SIGTERM
    assert not pid_alive(child) and not pid_alive(started.pid, started.pid_start)
    with pytest.raises(JobError, match="not running"):
        stop_job(store, record.id)


def test_a_killed_supervisor_leaves_an_orphan_that_is_reported_and_can_be_stopped(store, tmp_path):
    record = start_job(store, "train", [PY, "-c", "import time; time.sleep(120)"], cwd=tmp_path)
    _wait(store, record.id, states=("running",))
    running = store.load(record.id)
    os.kill(running.pid, signal.SIGKILL)  # as if the machine's OOM killer took the supervisor
    orphan = _wait(store, record.id, states=("orphaned",), timeout=10)
    assert orphan.state == "running"  # the record could not be finished: the state is derived
    assert pid_alive(running.child_pid, running.child_start)  # the training process itself is still there
    status = job_status(ProjectPaths.at(tmp_path, tmp_path / "logs"), store, record.id)
    assert status["state"] == "orphaned" and "supervisor is gone" in status["error"]
    stop_job(store, record.id)
    end = time.monotonic() + 10
    while pid_alive(running.child_pid, running.child_start) and time.monotonic() < end:
        time.sleep(0.05)
    assert not pid_alive(running.child_pid, running.child_start)


def test_pid_reuse_is_not_taken_for_the_job():
    me = os.getpid()
    assert pid_alive(me, process_start_ticks(me))
    assert not pid_alive(me, process_start_ticks(me) + 1)  # same pid, another start time: another process


def test_job_ids_are_checked_before_any_file_is_touched(store):
    for bad in ("../../etc/passwd", "train-1", "nope", "train-20260101-000000-ABCD"):
        with pytest.raises(JobError, match="not a job id"):
            store.load(bad)
    with pytest.raises(JobError, match="no job"):
        store.load("train-20260101-000000-abcd")


def test_an_unreadable_record_is_a_clear_error(store):
    store.root.mkdir(parents=True)
    (store.root / "train-20260101-000000-abcd.json").write_text("{not json")
    with pytest.raises(JobError, match="unreadable"):
        store.load("train-20260101-000000-abcd")
    assert store.all() == []


# ---------------------------------------------------------------------------- runs and paths
@pytest.fixture
def project(tmp_path):
    paths = ProjectPaths.at(tmp_path, tmp_path / "logs")
    run = paths.runs / "roarm_reach" / "2026-01-01_00-00-00_a"
    (run / "exported").mkdir(parents=True)
    (run / "model_0.pt").write_bytes(b"x")
    (run / "model_10.pt").write_bytes(b"x")
    (run / "model_2.pt").write_bytes(b"x")
    (run / "exported" / "policy.json").write_text("{}")
    (run / "exported" / "metrics.json").write_text(json.dumps({"success_rate": 0.5}))
    return paths, run


def test_runs_resolve_by_id_and_path_and_list_with_their_newest_checkpoint(project, store):
    paths, run = project
    assert find_run(paths, store, run.name).path == run.resolve()
    assert find_run(paths, store, str(run / "exported")).path == run.resolve()
    assert find_run(paths, store, "logs/rsl_rl/roarm_reach/" + run.name).path == run.resolve()
    _, ckpt = resolve_checkpoint(paths, store, run.name, None)
    assert ckpt.name == "model_10.pt"  # numeric order, not text order
    assert resolve_export(paths, store, run.name) == run.resolve() / "exported"
    (listed,) = list_runs(paths, store)
    assert listed["run_id"] == run.name and listed["checkpoints"] == 3 and listed["success_rate"] == 0.5
    with pytest.raises(RunError, match="no run"):
        find_run(paths, store, "2026-01-01_00-00-00_nope")


def test_paths_outside_the_runs_folder_are_refused(project, store, tmp_path):
    paths, run = project
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "model_1.pt").write_bytes(b"x")
    (run / "escape").symlink_to(outside)  # a link inside the runs folder that points out of it
    for bad, match in ((str(outside / "model_1.pt"), "outside"), ("../../etc/passwd", r"'\.\.'"),
                       (str(run / "escape" / "model_1.pt"), "outside"), ("a\x00b", "non-empty path"),
                       ("/etc/passwd", "outside")):
        with pytest.raises(PathError, match=match):
            resolve_checkpoint(paths, store, None, bad)


def test_training_progress_is_read_from_rsl_rl_reports():
    block = ("#" * 80 + "\n\x1b[1m" + " Learning iteration 41/900 ".center(80) + "\x1b[0m \n\n"
             "                       Mean reward: 3.25\n"
             "    Metrics/ee_target/position_error: 0.0312\n      Metrics/ee_target/success_rate: 0.6500\n"
             + "-" * 80 + "\n                   Iteration time: 0.95s\n                              ETA: 0:13:35\n")
    older = block.replace("41/900", "40/900").replace("0.6500", "0.1000")
    progress = training_progress(older + block)
    assert progress == {"iteration": 42, "total_iterations": 900, "fraction": round(42 / 900, 4), "eta_s": 815,
                        "success_rate": 0.65, "position_error_m": 0.0312, "mean_reward": 3.25}


def test_untrusted_overrides_cannot_reach_code_paths_or_flags():
    assert check_overrides(["env.rewards.tracking.weight=-3.0", "agent.algorithm.learning_rate=3e-4"])
    for bad, match in (("--log_root=/tmp", "must look like"), ("env.observations.policy.joint_pos.func=os:system",
                                                                "names code"),
                       ("agent.actor.class_name=x:y", "names code"), ("agent.experiment_name=../../x", "where runs"),
                       ("agent.logger=wandb", "where runs"), ("env.a=1\nagent.b=2", "one line"),
                       ("sim.dt=0.1", "must look like")):
        with pytest.raises(OverrideError, match=match):
            check_overrides([bad])
    with pytest.raises(OverrideError, match="env.a.b=value"):
        check_overrides(["agent.seed=1"], prefixes=("env",))


# ---------------------------------------------------------------------------- helper services
def test_a_service_started_from_a_short_lived_thread_outlives_that_thread(tmp_path):
    """The kernel's parent-death signal follows the forking thread; tools run on pool threads that end."""
    import threading

    from roarm_lab.utils.services import ServiceProcess

    made = {}
    argv = [PY, "-c", "import time; print('ready now', flush=True); time.sleep(120)"]
    worker = threading.Thread(target=lambda: made.setdefault("svc", ServiceProcess(argv, r"ready (\w+)",
                                                                                   tmp_path / "svc.log").start()))
    worker.start()
    worker.join()
    service = made["svc"]
    try:
        assert service.match.group(1) == "now"
        time.sleep(1.0)
        assert service.alive()  # still serving after the thread that started it has ended
    finally:
        assert service.stop() == -signal.SIGTERM
    assert not service.alive()


def test_a_service_that_never_gets_ready_is_reported_with_its_log(tmp_path):
    from roarm_lab.utils.services import ServiceError, ServiceProcess

    argv = [PY, "-c", "import sys; print('error: no policy.json at /x', file=sys.stderr); sys.exit(2)"]
    with pytest.raises(ServiceError, match="exited with code 2.*no policy.json"):
        ServiceProcess(argv, r"ready", tmp_path / "svc.log").start()


def test_a_chatty_service_is_not_blocked_by_its_output(tmp_path):
    """After the ready line its stdout goes to the log; an unread pipe (64 KiB) would stop it."""
    from roarm_lab.utils.services import ServiceProcess

    argv = [PY, "-c", "import sys, time\nprint('ready', flush=True)\nfor i in range(4000): print('x' * 100)\n"
                      "sys.stdout.flush(); print('done', flush=True); time.sleep(60)"]
    service = ServiceProcess(argv, r"ready", tmp_path / "svc.log").start()
    try:
        deadline = time.monotonic() + 30
        while "done" not in (tmp_path / "svc.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "done" in (tmp_path / "svc.log").read_text() and service.alive()
    finally:
        service.stop()
