"""Jobs: records on disk written by a real supervisor process, stop, lost jobs, run folders, confinement."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from roarm_lab.control import progress
from roarm_lab.control.jobs import JobError, JobStore
from roarm_lab.control.layout import PathError, ProjectPaths
from roarm_lab.control.process import running, start_ticks
from roarm_lab.control.runfiles import error_line, read_tail
from roarm_lab.control.runs import RunError, find_run, list_runs, resolve_checkpoint, resolve_export

PY = sys.executable


@pytest.fixture
def store(tmp_path):
    return JobStore(ProjectPaths.at(tmp_path, tmp_path / "logs"))


def test_a_job_records_its_command_pids_and_exit_code(store, tmp_path):
    record = store.start("train", [PY, "-c", "print('hello from the job')"], cwd=tmp_path, task="T")
    done = store.wait(record.id)
    assert done.state == "succeeded" and done.exit_code == 0 and done.ended >= done.started >= done.created
    assert done.pid and done.child_pid and done.child_pid != done.pid
    assert "hello from the job" in store.log(done).read_text()
    on_disk = json.loads((store.root / f"{record.id}.json").read_text())
    assert on_disk["command"][-1] == "print('hello from the job')" and on_disk["state"] == "succeeded"


def test_a_failing_job_reports_the_scripts_error_line(store, tmp_path):
    cmd = [PY, "-c", "import sys; print('error: unknown key env.x'); sys.exit(2)"]
    record = store.start("evaluate", cmd, cwd=tmp_path)
    done = store.wait(record.id)
    assert done.state == "failed" and done.exit_code == 2
    assert error_line(read_tail(store.log(done))) == "unknown key env.x"


def test_stop_ends_the_command_and_records_stopped(store, tmp_path):
    record = store.start("train", [PY, "-c", "import time; time.sleep(120)"], cwd=tmp_path)
    started = store.wait_started(record.id)
    store.wait(record.id, ("running",))
    running_record = store.load(record.id)
    stopped = store.stop(record.id)
    assert stopped.state == "stopped" and stopped.exit_code == -signal.SIGTERM
    assert not running(running_record.child_pid, running_record.child_start)
    assert not running(started.pid, started.pid_start)
    with pytest.raises(JobError, match="not running"):
        store.stop(record.id)


def test_pid_reuse_is_not_taken_for_the_job():
    me = os.getpid()
    assert running(me, start_ticks(me))
    assert not running(me, start_ticks(me) + 1)  # same pid, another start time: another process


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


def test_training_progress_comes_from_the_runs_progress_records(tmp_path):
    """Both faces read the training loop's own records; a line being written is skipped, the ETA is the recent rate."""
    path = tmp_path / "progress.jsonl"
    rows = [{"iteration": i, "wall_time_s": 2.0 * i, "success_rate": i / 100, "position_error_m": 0.1 / (i + 1),
             "mean_reward": float(i)} for i in range(41)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"iteration": 41, "wall_ti')  # cut mid-line
    latest = progress.latest(path, total_iterations=900)
    assert latest["iteration"] == 41 and latest["total_iterations"] == 900 and latest["success_rate"] == 0.4
    assert latest["eta_s"] == (900 - 41) * 2 and latest["fraction"] == round(41 / 900, 4)
    records, total = progress.curve(path, points=10)
    assert total == 41 and len(records) <= 11 and records[-1]["iteration"] == 40 and records[0]["iteration"] == 0
    assert progress.latest(tmp_path / "absent.jsonl") == {}


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
