"""The real arm through MCP, against the firmware emulator on a real pseudo-terminal: motion needs the server's
--allow-real-arm and the user's yes for each run (anything else sends nothing), dry_run is the default, and
emergency_stop halts a running bridge, latches, and never asks."""

from __future__ import annotations

import json
import time

import anyio
import numpy as np
import pytest

from mcp.types import ElicitResult

from mcp_helpers import answer, call, install_export, refused, session
from roarm_lab.control.jobs import JobStore

TARGET = [0.25, 0.05, 0.15]


@pytest.fixture(scope="module")
def emulator():
    from roarm_lab.real.emulator import EmulatorProcess

    with EmulatorProcess() as emu:
        yield emu


@pytest.fixture
def lab(tmp_path, export_dir, emulator):
    run = install_export(export_dir, tmp_path / "logs")
    return tmp_path / "logs", run.name, ["--robot", "serial", "--serial-port", emulator.port]


def _real_jobs(logs) -> list:
    return [j for j in JobStore.at(logs).all() if j.kind == "real"]


async def _joints(client) -> np.ndarray:
    probe = (await call(client, "real_arm_status", probe=True))["probe"]
    return np.array(list(probe["joints_rad"].values()))


def test_dry_run_is_the_default_and_sends_nothing(lab):
    logs, run, robot = lab

    async def main():
        async with session(logs, *robot) as client:
            result = await call(client, "run_policy_on_real_arm", policy=run, targets=[TARGET])
            assert result["dry_run"] is True and result["started"] is False and "job_id" not in result
            assert result["plan"]["targets_m"] == [TARGET] and result["plan"]["port"].startswith("/")
            msg = await refused(client, "run_policy_on_real_arm", policy=run, targets=[[1.5, 0.0, 0.2]])
            assert "reachable workspace" in msg and "nearest reachable point" in msg
            msg = await refused(client, "run_policy_on_real_arm", policy="/etc", targets=[TARGET])
            assert "outside the project's run folders" in msg
    anyio.run(main)
    assert _real_jobs(logs) == []


def test_motion_without_allow_real_arm_is_refused_without_asking_and_the_arm_does_not_move(lab):
    logs, run, robot = lab
    asked: list[str] = []

    async def main():
        async with session(logs, *robot, elicit=answer(True, asked)) as client:
            before = await _joints(client)
            msg = await refused(client, "run_policy_on_real_arm", policy=run, targets=[TARGET], dry_run=False)
            assert "--allow-real-arm" in msg and "nothing was sent" in msg
            await anyio.sleep(0.5)
            assert np.allclose(await _joints(client), before, atol=0.01)
    anyio.run(main)
    assert asked == [] and _real_jobs(logs) == []  # the user was not even asked: the server refuses by itself


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # 2025-11-25 back-channel and 2026-07-28 input-required
def test_a_run_the_user_does_not_confirm_sends_nothing(lab, mode):
    logs, run, robot = lab

    async def main():
        for reply in (None, False):  # declined, and accepted with "no"
            asked: list[str] = []
            async with session(logs, *robot, "--allow-real-arm", elicit=answer(reply, asked), mode=mode) as client:
                before = await _joints(client)
                msg = await refused(client, "run_policy_on_real_arm", policy=run, targets=[TARGET], dry_run=False)
                assert msg == ("the real-arm run: you declined the confirmation, so nothing was done" if reply is None
                               else "the real-arm run: you answered no, so nothing was done") and len(asked) == 1
                assert "REAL RoArm-M3" in asked[0] and "[0.250, 0.050, 0.150]" in asked[0]
                assert np.allclose(await _joints(client), before, atol=0.01)
        async with session(logs, *robot, "--allow-real-arm", mode=mode) as client:  # a client that cannot ask
            msg = await refused(client, "run_policy_on_real_arm", policy=run, targets=[TARGET], dry_run=False)
            assert "cannot ask you to confirm" in msg and "nothing was done" in msg and "resolver" not in msg
    anyio.run(main)
    assert _real_jobs(logs) == []


def test_a_confirmed_run_moves_the_arm_and_emergency_stop_halts_it_and_latches(lab):
    logs, run, robot = lab
    asked: list[str] = []

    async def main():
        async with session(logs, *robot, "--allow-real-arm", "--target-time-s", "4",
                           elicit=answer(True, asked)) as client:
            before = await _joints(client)
            targets = [TARGET, [0.2, -0.1, 0.2], [0.3, 0.0, 0.1]]
            started = await call(client, "run_policy_on_real_arm", policy=run, targets=targets, dry_run=False)
            assert started["started"] is True and started["job_id"].startswith("real-") and len(asked) == 1
            job = started["job_id"]
            deadline = time.monotonic() + 90
            status = await call(client, "training_status", run_id=job)
            while time.monotonic() < deadline:  # wait until the bridge's control loop is logging steps
                status = await call(client, "training_status", run_id=job)
                if status["state"] not in ("starting", "running") or any("at the start pose" in line
                                                                         for line in status["console_tail"]):
                    break
                await anyio.sleep(0.3)
            assert status["state"] == "running", status
            estop = await call(client, "emergency_stop")
            assert estop["real_jobs_signalled"] == [job]
            while time.monotonic() < deadline:
                status = await call(client, "training_status", run_id=job)
                if status["state"] not in ("starting", "running"):
                    break
                await anyio.sleep(0.2)
            assert status["state"] == "stopped", status
            summary = status["metrics"]
            assert summary is not None and 0 < summary["duration_s"] < 12 - 2  # cut short of 3 targets x 4 s
            assert summary["max_command_outside_safe_box_rad"] == 0.0
            arm = await call(client, "real_arm_status")
            assert arm["stop_latched"] is True and arm.get("active_job") is None
            msg = await refused(client, "run_policy_on_real_arm", policy=run, targets=[TARGET], dry_run=False)
            assert "emergency stop is latched" in msg and len(asked) == 1  # refused without asking again
            held = await _joints(client)
            await anyio.sleep(0.5)
            assert np.allclose(await _joints(client), held, atol=0.01)  # torque-held where it stopped
            assert not np.allclose(held, before, atol=0.01) or summary["steps"] > 0
    anyio.run(main)
    (job,) = _real_jobs(logs)
    assert json.loads((logs / "jobs" / f"{job.id}.json").read_text())["state"] == "stopped"


def test_emergency_stop_is_always_available_never_asks_and_latches_only_where_a_real_arm_is_configured(lab):
    logs, _, robot = lab
    asked: list[str] = []

    async def main():
        async with session(logs, *robot, elicit=answer(True, asked)) as client:  # no --allow-real-arm
            estop = await call(client, "emergency_stop")
            assert estop["latched"] is False and "no stop file" in estop["message"]
        assert not (logs / "real" / "STOP").exists()
        async with session(logs, *robot, "--allow-real-arm", elicit=answer(True, asked)) as client:
            for _ in range(2):
                estop = await call(client, "emergency_stop")
                assert estop["latched"] is True and estop["real_jobs_signalled"] == []
                assert "stop file written" in estop["message"] and "deletes the stop file" in estop["message"]
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert tools["emergency_stop"].annotations.read_only_hint is not True
    anyio.run(main)
    assert asked == [] and (logs / "real" / "STOP").is_file()


def test_a_missing_port_is_reported_by_status_and_refused_before_asking(tmp_path, export_dir):
    run = install_export(export_dir, tmp_path / "logs").name
    asked: list[str] = []

    async def main():
        async with session(tmp_path / "logs", "--serial-port", str(tmp_path / "ttyNOPE"), "--allow-real-arm",
                           elicit=answer(True, asked)) as client:
            status = await call(client, "real_arm_status")
            assert status["port_present"] is False and status["motion_allowed"] is True
            probe = (await call(client, "real_arm_status", probe=True))["probe"]
            assert "does not exist" in probe["error"]  # known absent: the driver is not even tried (no 3 s wait)
            msg = await refused(client, "run_policy_on_real_arm", policy=run, targets=[TARGET], dry_run=False)
            assert "does not exist" in msg and "nothing was sent" in msg
    anyio.run(main)
    assert asked == [] and _real_jobs(tmp_path / "logs") == []


def test_real_arm_motion_is_not_offered_over_http():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "roarm_lab.mcp_server", "--http", "--allow-real-arm"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "only offered over stdio" in out.stderr


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_a_policy_changed_while_the_user_is_asked_is_not_run(lab, mode):
    """The question names the export's fingerprint. Rewritten while the user reads it: on 2025-11-25's back-channel
    the yes is refused (nothing sent); on 2026-07-28's rounds the new question is asked anew (here: declined)."""
    logs, run, robot = lab
    asked: list[str] = []
    spec = logs / "rsl_rl" / "roarm_reach" / run / "exported" / "policy.json"

    async def rewrite_then_decline(_ctx, params):
        asked.append(params.message)
        if len(asked) == 1:
            spec.write_text(spec.read_text() + " ")  # another export lands while the question is open
            return ElicitResult(action="accept", content={"confirm": True})
        return ElicitResult(action="decline")

    async def main():
        async with session(logs, *robot, "--allow-real-arm", elicit=rewrite_then_decline, mode=mode) as client:
            return await refused(client, "run_policy_on_real_arm", policy=run, targets=[TARGET], dry_run=False)

    msg = anyio.run(main)
    assert "fingerprint" in asked[0]
    if mode == "legacy":
        assert len(asked) == 1 and "changed while you were being asked" in msg and "nothing was sent" in msg
    else:
        assert len(asked) == 2 and asked[0] != asked[1] and "declined" in msg
    assert _real_jobs(logs) == []
