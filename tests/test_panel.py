"""The panel's web server as a process (``roarm-panel``) against the real control plane: jobs (train.py under
the supervisor), the simulator service, the real arm's status and stop latch. Its threat model
(docs/security.md): loopback, no state change on GET, a token when one is in force, only JSON actions from the
panel's own origin, nothing a page sends run as code. Faults: a killed simulator or job is reported and can be
restarted; a double press or a second panel starts one job, not two."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from mcp_helpers import install_export
from panel_helpers import ROOT, panel_server, request, wait_for
from roarm_lab.jobs.store import JobStore, pid_alive

TINY = {"max_iterations": 3, "num_envs": 64, "overrides": ["env.episode_length_s=0.5"]}
LONG = {"max_iterations": 400, "num_envs": 64, "overrides": ["env.episode_length_s=0.5"]}


def state(url: str) -> dict:
    status, body = request(url, "/api/state")
    assert status == 200, body
    return body


def job(url: str, job_id: str) -> dict | None:
    return next((j for j in state(url)["jobs"] if j["job_id"] == job_id), None)


def act(url: str, name: str, expect: int = 200, **fields) -> dict:
    status, body = request(url, f"/api/action/{name}", fields)
    assert status == expect, body
    return body


def test_reads_never_change_state_and_actions_need_json_from_the_panels_own_origin(tmp_path):
    with panel_server(tmp_path / "logs") as (url, _):
        host = url.split("/")[2]
        status, body = request(url, "/api/action/start_training", method="GET")
        assert status == 405 and "POST" in body["error"]
        status, body = request(url, "/api/action/start_sim", headers={"Content-Type": "text/plain"}, method="POST")
        assert status == 415 and "JSON" in body["error"]  # what a cross-site form or text/plain post sends
        status, body = request(url, "/api/action/start_sim", {}, headers={"Origin": "http://evil.example"})
        assert status == 403 and "another site" in body["error"]
        status, body = request(url, "/api/state", headers={"Host": "evil.example:80"})  # DNS rebinding
        assert status == 403
        status, body = request(url, "/api/action/os.system", {})
        assert status == 404 and "unknown action" in body["error"]
        status, body = request(url, "/api/action/stop_sim", {"command": "rm -rf /"})
        assert status == 400 and "unknown field" in body["error"]
        status, body = request(url, "/api/action/start_sim", {"x": "y" * 70000})
        assert status == 413
        status, body = request(url, "/", headers={})
        assert status == 200 and b"EMERGENCY STOP" in body
        status, body = request(url, "/static/../../pyproject.toml")
        assert status == 404
        # what a page sends is data, checked; never code, never a path outside the runs
        assert "names code" in act(url, "start_training", 400, overrides=["env.rewards.tracking.func=os:system"])["error"]
        assert "must look like" in act(url, "start_training", 400, overrides=["--log_root=/tmp"])["error"]
        assert "letters, digits" in act(url, "start_training", 400, run_name="a; rm -rf ~")["error"]
        assert ".." in act(url, "play", 400, policy="../../../etc")["error"]
        assert "target y must be a number" in act(url, "set_target", 400, target=[0.2, "0.1; DROP", 0.1])["error"]
        assert state(url)["jobs"] == []  # nothing above started anything
        assert host.startswith("127.0.0.1:")


def test_a_token_is_required_when_one_is_in_force_and_a_readable_token_file_is_refused(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("t" * 40)
    token_file.chmod(0o644)
    run = subprocess.run([sys.executable, "-m", "roarm_lab.panel", "--port", "0", "--token-file", str(token_file)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 2 and "chmod 600" in run.stderr and "Traceback" not in run.stderr
    token_file.chmod(0o600)
    with panel_server(tmp_path / "logs", "--token-file", str(token_file)) as (url, _):
        assert url.endswith("#token=" + "t" * 40)
        status, body = request(url, "/api/state")
        assert status == 401 and "token" in body["error"]
        status, body = request(url, "/api/action/emergency_stop", {}, headers={"X-Panel-Token": "t" * 39 + "x"})
        assert status == 401
        status, body = request(url, "/api/state", headers={"X-Panel-Token": "t" * 40})
        assert status == 200 and body["real"]["stop_latched"] is False
    # real-arm motion is only offered with a token, even on loopback (any local user can reach the port)
    with panel_server(tmp_path / "logs2", "--allow-real-arm", "--robot", "emu") as (url, _):
        assert "#token=" in url
        assert request(url, "/api/state")[0] == 401


def test_a_double_press_and_a_second_panel_start_one_training_job(tmp_path):
    logs = tmp_path / "logs"
    with panel_server(logs) as (url, _), panel_server(logs) as (url2, _):
        results = []
        threads = [threading.Thread(target=lambda u=u: results.append(request(u, "/api/action/start_training", LONG)))
                   for u in (url, url, url2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(status == 200 for status, _ in results), results
        ids = {body["job_id"] for _, body in results}
        assert len(ids) == 1, results
        assert sorted(body["already_running"] for _, body in results) == [False, True, True]
        (job_id,) = ids
        assert [j["job_id"] for j in state(url)["jobs"]] == [j["job_id"] for j in state(url2)["jobs"]] == [job_id]
        assert len(JobStore(logs / "jobs").all()) == 1
        act(url2, "stop_job", job_id=job_id)
        assert wait_for("stopped on both panels", lambda: job(url, job_id)["state"] == "stopped" and
                        job(url2, job_id)["state"] == "stopped", 60)


def test_training_progress_and_the_learning_curve_come_from_the_runs_own_files(tmp_path):
    with panel_server(tmp_path / "logs") as (url, _):
        job_id = act(url, "start_training", **TINY)["job_id"]
        done = wait_for("the tiny job", lambda: (j := job(url, job_id)) and j["state"] == "succeeded" and j, 180)
        assert (done["iteration"], done["total_iterations"]) == (3, 3) and done["success_rate"] is not None
        status, curve = request(url, f"/api/curve?run={done['run_id']}")
        assert status == 200 and [r["iteration"] for r in curve["records"]] == [0, 1, 2]
        assert all(r["position_error_m"] > 0 for r in curve["records"])
        status, run = request(url, f"/api/run?id={done['run_id']}")
        assert run["checkpoints"][0].endswith("model_2.pt") and run["exported"] is False
        # play without an export: the message names the panel's button, not an MCP tool
        error = act(url, "play", 400, policy=done["run_id"])["error"]
        assert "press “Export”" in error and "export_policy" not in error


def test_a_killed_simulator_and_a_killed_job_are_reported_and_restart(tmp_path):
    with panel_server(tmp_path / "logs") as (url, _):
        act(url, "start_sim", realtime=False)
        sim = state(url)["sim"]
        assert sim["running"] and sim["state"]["step"] == 0
        assert request(url, "/api/frame.png?camera=top&w=160&h=120")[1][:8] == b"\x89PNG\r\n\x1a\n"
        os.kill(sim["pid"], signal.SIGKILL)
        died = wait_for("the death reported", lambda: state(url)["sim"]["died"], 30)
        assert died["exit_code"] == -signal.SIGKILL and died["why"] == "killed by SIGKILL"
        assert not state(url)["sim"]["running"]
        error = act(url, "set_target", 400, target=[0.2, 0.0, 0.2])["error"]
        assert "stopped unexpectedly" in error and "Restart simulator" in error
        status, body = request(url, "/api/frame.png")
        assert status == 503 and "Restart simulator" in body["error"]
        assert "started" in act(url, "restart_sim")["message"]
        after = state(url)["sim"]
        assert after["running"] and after["died"] is None and after["pid"] != sim["pid"]

        job_id = act(url, "start_training", **LONG)["job_id"]
        record = wait_for("the command started", lambda: (r := JobStore(tmp_path / "logs" / "jobs").load(job_id))
                          .child_pid and r, 60)
        os.kill(record.child_pid, signal.SIGKILL)
        failed = wait_for("the failure reported", lambda: (j := job(url, job_id))["state"] == "failed" and j, 60)
        assert failed["exit_code"] == 0 or failed["state"] == "failed"
        again = act(url, "restart_job", job_id=job_id)
        assert again["already_running"] is False and again["job_id"] != job_id
        new = JobStore(tmp_path / "logs" / "jobs").load(again["job_id"])
        assert new.params["max_iterations"] == 400 and "env.episode_length_s=0.5" in new.params["overrides"]
        act(url, "stop_job", job_id=again["job_id"])
        wait_for("the restarted job stopped", lambda: job(url, again["job_id"])["state"] == "stopped", 60)
        sim_pid = after["pid"]
    wait_for("the panel's simulator to end with the panel", lambda: not pid_alive(sim_pid), 30)


def test_emergency_stop_latches_the_real_arm_and_is_always_accepted(tmp_path, export_dir):
    run = install_export(export_dir, tmp_path / "logs").name
    with panel_server(tmp_path / "logs") as (url, _):
        assert state(url)["real"]["stop_latched"] is False
        first = act(url, "emergency_stop")
        assert "EMERGENCY STOP" in first["message"] and (tmp_path / "logs" / "real" / "STOP").is_file()
        assert act(url, "emergency_stop")["real_jobs_signalled"] == []  # pressing again is fine
        real = state(url)["real"]
        assert real["stop_latched"] is True and state(url)["estop"]["stop_file"] == real["stop_file"]
        # the dry run (the panel's default) checks and sends nothing; motion is off on this server
        plan = act(url, "real_dry_run", policy=run, targets=[[0.25, 0.05, 0.15]])
        assert plan["dry_run"] is True and plan["sent"] is False and plan["plan"]["targets_m"] == [[0.25, 0.05, 0.15]]
        refused = act(url, "real_run", 400, policy=run, targets=[[0.25, 0.05, 0.15]], confirm=True)
        assert "nothing was sent" in refused["error"] and "--allow-real-arm" in refused["error"]
        assert not (tmp_path / "logs" / "jobs").exists() or JobStore(tmp_path / "logs" / "jobs").all() == []


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                           ("0.0.0.0", False), ("192.168.1.20", False)])
def test_only_loopback_binds_go_without_a_token(host, loopback):
    from roarm_lab.panel.cli import is_loopback_host

    assert is_loopback_host(host) is loopback
