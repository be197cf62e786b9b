"""Each rule of the control core, driven through both faces by one test: Copilot's MCP server (a real ``mcp``
client over stdio) and the lab panel (its own process, real HTTP). A face holds no rule of its own, so the same
hostile request gets the same refusal from either, and the same job limit counts jobs started from both."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import anyio
import anyio.from_thread
import pytest

from mcp_helpers import install_export, parsed, session
from panel_helpers import panel_server, request
from roarm_lab.control.jobs import JobRecord, JobStore, new_job_id
from roarm_lab.control.process import start_ticks

PY = sys.executable
SLEEP = [PY, "-c", "import time; time.sleep(300)"]


class Refused(Exception):
    """The face refused the request; the message is what its user reads."""


class McpFace:
    name = "mcp"

    def __init__(self, logs: Path):
        self._stack = contextlib.ExitStack()
        self.portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        self.client = self._stack.enter_context(self.portal.wrap_async_context_manager(session(logs)))

    def _call(self, tool: str, **args: Any) -> dict[str, Any]:
        result = self.portal.call(self.client.call_tool, tool, args)
        if result.is_error:
            raise Refused(result.content[0].text)
        return parsed(result)

    def start_training(self, **args: Any) -> dict[str, Any]:
        return self._call("start_training", **args)

    def stop(self, job_id: str) -> dict[str, Any]:
        return self._call("stop_training", run_id=job_id)

    def status(self, job_id: str) -> dict[str, Any]:
        return self._call("training_status", run_id=job_id)

    def emergency_stop(self) -> dict[str, Any]:
        return self._call("emergency_stop")

    def serve(self, policy: str) -> dict[str, Any]:
        return self._call("start_gateway", policy=policy)

    def dry_run(self, policy: str, targets: list[list[float]]) -> dict[str, Any]:
        return self._call("run_policy_on_real_arm", policy=policy, targets=targets, dry_run=True)

    def close(self) -> None:
        self._stack.close()


class PanelFace:
    name = "panel"

    def __init__(self, logs: Path):
        self._stack = contextlib.ExitStack()
        self.url, _ = self._stack.enter_context(panel_server(logs))

    def _act(self, action: str, **fields: Any) -> dict[str, Any]:
        status, body = request(self.url, f"/api/action/{action}", fields)
        if status != 200 or not body.get("ok"):
            raise Refused(body.get("error") if isinstance(body, dict) else body)
        return body

    def start_training(self, **args: Any) -> dict[str, Any]:
        body = self._act("start_training", **args)
        if body.get("already_running"):  # the panel's answer to a second press: the job in the way
            raise Refused(body["message"])
        return body

    def stop(self, job_id: str) -> dict[str, Any]:
        return self._act("stop_job", job_id=job_id)

    def status(self, job_id: str) -> dict[str, Any]:
        _, state = request(self.url, "/api/state")
        found = [j for j in state["jobs"] if j["job_id"] == job_id]
        if not found:
            raise Refused(f"{job_id} is not in the panel's job list")
        return found[0]

    def emergency_stop(self) -> dict[str, Any]:
        return self._act("emergency_stop")

    def serve(self, policy: str) -> dict[str, Any]:
        return self._act("start_gateway", policy=policy)

    def dry_run(self, policy: str, targets: list[list[float]]) -> dict[str, Any]:
        return self._act("real_dry_run", policy=policy, targets=targets)

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(params=[McpFace, PanelFace], ids=["mcp", "panel"])
def face(request, tmp_path) -> Iterator[Any]:
    logs = tmp_path / "logs"
    made = request.param(logs)
    made.logs = logs
    try:
        yield made
    finally:
        made.close()
        store = JobStore.at(logs)
        for job in store.all():
            if store.counts_as_running(job):
                store.stop(job.id, wait_s=10)


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen]:
    """A process neither face started (what a tampered job record points at)."""
    proc = subprocess.Popen(SLEEP)
    yield proc
    proc.kill()
    proc.wait()


def _jobs(logs: Path) -> list[JobRecord]:
    return JobStore.at(logs).all()


# ---------------------------------------------------------------------------- items 1 and 2: overrides are data
@pytest.mark.parametrize("override, says", [
    ("agent.critic.distribution_cfg={class_name:'os:chmod',mode:511}", "distribution_cfg"),
    ("agent.actor.activation='os.system'", "short plain name"),
    ("env.scene.num_envs=9000", "env.scene.num_envs must be a whole number from 1 to 8192"),
    ("agent.max_iterations=1000000000", "agent.max_iterations must be a whole number from 1 to 100000"),
    ("agent.save_interval=1", "agent.save_interval must be a whole number from 10 to 100000"),
])
def test_an_override_that_carries_code_or_breaks_a_limit_is_refused_by_both_faces(face, override, says):
    with pytest.raises(Refused, match=says):
        face.start_training(overrides=[override])
    assert _jobs(face.logs) == []  # refused before anything started


# ---------------------------------------------------------------------------- item 3: the job limit
def test_one_training_at_a_time_whichever_face_asks(face, tmp_path):
    """A training is running (started by another face, or another process: the store is shared); this face's start
    is refused and names it."""
    other = JobStore.at(face.logs).start("train", SLEEP, cwd=tmp_path)
    with pytest.raises(Refused, match=other.id):
        face.start_training(max_iterations=10, num_envs=8)
    assert [j.id for j in _jobs(face.logs)] == [other.id]


def test_a_training_started_through_mcp_blocks_a_second_through_the_panel(tmp_path):
    logs = tmp_path / "logs"
    mcp, panel = McpFace(logs), PanelFace(logs)
    try:
        started = mcp.start_training(max_iterations=100000, num_envs=8)
        status, body = request(panel.url, "/api/action/start_training", {"max_iterations": 10})
        assert status == 200 and body["already_running"] and body["job_id"] == started["job_id"]
        with pytest.raises(Refused, match="at most 1"):
            mcp.start_training(max_iterations=10)
        assert len(_jobs(logs)) == 1
        assert panel.stop(started["job_id"])["state"] == "stopped"
    finally:
        mcp.close()
        panel.close()


# ---------------------------------------------------------------------------- item 4: paths leave the runs folder
def test_an_export_symlinked_out_of_the_runs_folder_is_neither_served_nor_planned(face, export_dir, tmp_path):
    outside = tmp_path / "outside" / "exported"
    shutil.copytree(export_dir, outside)
    run = install_export(export_dir, face.logs, "2026-01-01_00-00-00_evil")
    shutil.rmtree(run / "exported")
    (run / "exported").symlink_to(outside)
    for attempt in (lambda: face.serve(run.name), lambda: face.dry_run(run.name, [[0.25, 0.0, 0.2]])):
        with pytest.raises(Refused, match="outside the runs folder"):
            attempt()


# ---------------------------------------------------------------------------- item 5: tampered job records
def _tampered(logs: Path, kind: str, victim: subprocess.Popen, **fields: Any) -> str:
    record = JobRecord(id=new_job_id(kind), kind=kind, command=["sleep"], cwd="/", state="running", pid=victim.pid,
                       pid_start=start_ticks(victim.pid), child_pid=victim.pid, child_start=start_ticks(victim.pid))
    (logs / "jobs").mkdir(parents=True, exist_ok=True)
    (logs / "jobs" / f"{record.id}.json").write_text(json.dumps({**record.to_json(), **fields}))
    return record.id


def test_a_tampered_job_record_gets_no_stranger_signalled_and_shows_no_foreign_file(face, stranger, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:the-hash:19000\n")
    train = _tampered(face.logs, "train", stranger, log=str(secret))
    _tampered(face.logs, "real", stranger)
    with pytest.raises(Refused, match="not running"):
        face.stop(train)
    assert face.emergency_stop()["real_jobs_signalled"] == []
    time.sleep(0.3)
    assert stranger.poll() is None  # no SIGTERM, SIGINT or SIGUSR1 reached it
    status = face.status(train)
    assert status["state"] == "lost" and "the-hash" not in json.dumps(status)


# ---------------------------------------------------------------------------- item 6: a supervisor killed with -9
def test_a_job_whose_supervisor_was_killed_is_shown_lost_with_the_reason(face, tmp_path):
    import os
    import signal

    store = JobStore.at(face.logs)
    record = store.start("train", SLEEP, cwd=tmp_path)
    end = time.monotonic() + 30
    while store.load(record.id).pid is None and time.monotonic() < end:
        time.sleep(0.05)
    os.kill(store.load(record.id).pid, signal.SIGKILL)
    end = time.monotonic() + 10
    while "SIGKILL" not in (face.status(record.id).get("error") or "") and time.monotonic() < end:
        time.sleep(0.2)
    status = face.status(record.id)
    assert status["state"] == "lost" and "was killed by SIGKILL" in status["error"]
    face.start_training(max_iterations=10, num_envs=8)  # the limit no longer counts it
