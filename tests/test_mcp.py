"""The MCP server as Copilot Chat drives it: a real ``mcp`` client over stdio, real jobs (scripts/train.py and
play.py), the real simulator service, the real policy gateway, and the MCP Inspector CLI as an independent client."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp import Client

from mcp_helpers import ROOT, ToolFailed, call, install_export, refused, server_params, session
from roarm_lab.control.jobs import JobStore
from roarm_lab.control.process import running as pid_alive

ISSUE_TOOLS = {"start_sim", "stop_sim", "list_robots", "load_robot", "get_joint_state", "set_joint_targets",
               "apply_action", "capture_observation", "policy_infer", "rollout_capture", "render_sim",
               "run_policy_in_sim", "start_training", "training_status", "stop_training", "list_runs",
               "evaluate_policy", "export_policy", "start_gateway", "gateway_stats", "stop_gateway", "real_arm_status",
               "run_policy_on_real_arm", "emergency_stop", "check_environment"}
READ_ONLY = {"get_joint_state", "capture_observation", "policy_infer", "render_sim", "training_status", "list_runs",
             "gateway_stats", "real_arm_status", "check_environment", "list_robots", "load_robot"}
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"

# A short training run that learns something in a few iterations: one fixed target (a joint box of one point) on
# the nominal arm without latency, the simulator's own evaluation conditions. The scenario then asks for exactly
# that target, so the policy that comes out can be seen to move the hand toward it.
TARGET_Q = {"base": 0.3, "shoulder": 0.25, "elbow": 1.25, "wrist": 0.3, "roll": 0.0}
TRAIN_OVERRIDES = [
    "env.commands.ee_target.joint_box={" + ",".join(f"{k}:[{v},{v}]" for k, v in TARGET_Q.items()) + "}",
    "env.episode_length_s=3.0", "env.events.action_latency=null", "env.events.servo_speed=null",
    "env.events.link_masses=null", "env.events.servo_gains=null", "env.events.joint_dynamics=null",
    "env.events.calibration=null", "agent.save_interval=10",
]
TRAIN_ENVS, TRAIN_ITERATIONS = 256, 40


def _target_b() -> list[float]:
    from roarm_lab.assets.kinematics import tcp_positions_base

    return [float(v) for v in tcp_positions_base(np.array([list(TARGET_Q.values())]))[0]]


async def _wait_job(client: Client, job_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    seen_progress = []
    while True:
        status = await call(client, "training_status", run_id=job_id)
        if status.get("iteration"):
            seen_progress.append((status["iteration"], status["total_iterations"]))
        if status["state"] not in ("starting", "running"):
            status["seen_progress"] = seen_progress
            return status
        assert time.monotonic() < deadline, f"job {job_id} still {status['state']}: {status['console_tail'][-3:]}"
        await anyio.sleep(1.0)


# ---------------------------------------------------------------------------- the tool surface


def test_the_server_starts_without_torch_rsl_rl_or_mujoco():
    """A chat client waits on the server's start: the modules it loads up front are its own, the job scripts load
    the learning stack in their own processes (importing torch and rsl_rl here once took 8 of 11 seconds)."""
    code = ("import sys, roarm_lab.mcp_server.server, roarm_lab.mcp_server.cli; "
            "print(sorted(m for m in ('torch', 'rsl_rl', 'mujoco', 'tensordict') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_the_tools_have_the_issues_names_docstrings_schemas_and_annotations(tmp_path):
    from roarm_lab.mcp_server.server import build_server
    from roarm_lab.control.settings import LabSettings
    from roarm_lab.control.layout import ProjectPaths

    async def main():
        async with Client(build_server(LabSettings(paths=ProjectPaths.at(None, tmp_path / "logs")))) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            prompts = [p.name for p in (await client.list_prompts()).prompts]
            templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        return tools, prompts, templates

    tools, prompts, templates = anyio.run(main)
    assert set(tools) == ISSUE_TOOLS and len(tools) <= 30  # Copilot caps a request at 128 tools over all servers
    for name, tool in tools.items():
        assert tool.description and len(tool.description) > 60, name
        assert tool.output_schema and tool.output_schema.get("type") == "object", name
        assert tool.annotations is not None, name
        assert bool(tool.annotations.read_only_hint) == (name in READ_ONLY), name
    assert tools["run_policy_on_real_arm"].annotations.destructive_hint is True
    assert tools["run_policy_on_real_arm"].input_schema["properties"]["dry_run"]["default"] is True
    assert "confirmation" not in tools["run_policy_on_real_arm"].input_schema["properties"]  # filled by the server
    assert "train_evaluate_try_reach" in prompts
    assert {"roarm://runs/{run_id}/metrics.json", "roarm://runs/{run_id}/policy.json",
            "roarm://runs/{run_id}/console"} <= set(templates)


def test_check_environment_reports_this_machine_and_writes_the_diagnosis(tmp_path):
    from roarm_lab.control.layout import ProjectPaths
    from roarm_lab.mcp_server.server import build_server
    from roarm_lab.control.settings import LabSettings

    async def main():
        async with Client(build_server(LabSettings(paths=ProjectPaths.at(None, tmp_path / "logs")))) as client:
            return await call(client, "check_environment")

    report = anyio.run(main)
    rows = {r["name"]: r for r in report["checks"]}
    assert rows["runtime: embedded"]["status"] == "ok" and rows["mcp sdk"]["detail"].startswith("mcp 2.3")
    assert {"python", "torch", "mujoco", "runtime: Isaac Lab", "runtime: Isaac Sim", "warp devices", "gpu",
            "node (MCP Inspector)"} <= set(rows)
    (written,) = (tmp_path / "logs").glob("env_diag_*.txt")
    assert written.read_text().strip() == report["table"].strip()
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_env.py"), "--logs", str(tmp_path / "cli")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "runtime: embedded" in out.stdout
    assert len(list((tmp_path / "cli").glob("env_diag_*.txt"))) == 1 and "written to" in out.stdout


# ---------------------------------------------------------------------------- the scenario
def test_a_chat_trains_evaluates_exports_and_drives_the_simulator_through_the_gateway(tmp_path):
    logs = tmp_path / "logs"
    target = _target_b()

    async def main():
        # 1. list tools, start a short training job; the server is then restarted: the job must survive it
        async with session(logs) as client:
            assert "start_training" in {t.name for t in (await client.list_tools()).tools}
            started = await call(client, "start_training", num_envs=TRAIN_ENVS, max_iterations=TRAIN_ITERATIONS,
                                 overrides=TRAIN_OVERRIDES, run_name="chat")
            job = started["job_id"]
            assert started["state"] in ("starting", "running") and started["run_id"] == job
        async with session(logs) as client:  # a new server process: the job is read back from disk
            done = await _wait_job(client, job, timeout_s=1500)
            assert done["state"] == "succeeded" and done["exit_code"] == 0, done
            assert done["iteration"] == done["total_iterations"] == TRAIN_ITERATIONS
            assert done["newest_checkpoint"].endswith(f"model_{TRAIN_ITERATIONS - 1}.pt")
            assert done["seen_progress"] and all(i <= n == TRAIN_ITERATIONS for i, n in done["seen_progress"])
            runs = (await call(client, "list_runs", task="RoArm-Reach-v0"))["runs"]
            assert [r["job_id"] for r in runs] == [job] and runs[0]["finished"]

            # 2. evaluate it as a job, then export (already exported by the evaluation: nothing to start)
            evaluation = await call(client, "evaluate_policy", run_id=job, episodes=16)
            result = await _wait_job(client, evaluation["job_id"], timeout_s=600)
            assert result["state"] == "succeeded", result
            assert result["metrics"]["episodes"] == 16 and 0.0 <= result["success_rate"] <= 1.0
            export = await call(client, "export_policy", run_id=job)
            assert export["up_to_date"] is True and {"policy.onnx", "policy.json"} <= set(export["files"])
            metrics = json.loads((await client.read_resource(f"roarm://runs/{job}/metrics.json")).contents[0].text)
            assert metrics["episodes"] == 16
            policy_json = json.loads((await client.read_resource(f"roarm://runs/{job}/policy.json")).contents[0].text)

            # 3. the simulator: state, a joint target the joint moves toward, the observation, a picture
            sim = await call(client, "start_sim")
            assert sim["joint_names"] == ["base", "shoulder", "elbow", "wrist", "roll"]
            state = await call(client, "get_joint_state")
            base_before = state["joints"][0]["position_rad"]
            moved = await call(client, "set_joint_targets", targets={"base": base_before + 0.5}, steps=20)
            base_after = moved["state"]["joints"][0]["position_rad"]
            assert moved["clamped"] == [] and 0.2 < base_after - base_before <= 0.5 + 0.02
            obs = await call(client, "capture_observation")
            assert obs["groups"]["policy"]["layout"] == policy_json["observation"]["terms"]
            picture = await client.call_tool("render_sim", {"camera": "iso", "width": 320, "height": 240})
            _check_png(picture.content[0])

            # 4. serve the exported policy and run it in the simulator through the gateway
            gateway = await call(client, "start_gateway", policy=job)
            assert gateway["endpoint"].startswith("tcp://127.0.0.1:")
            run = await call(client, "run_policy_in_sim", use_gateway=True, target=target, max_steps=150,
                             until_reached=False)
            assert run["source"].startswith("gateway") and run["steps"] == 150 and run["hold_steps"] < 15
            assert run["final_error_m"] < 0.6 * run["initial_error_m"], run  # the hand approached the target
            stats = await call(client, "gateway_stats")
            assert stats["stats"]["requests"]["infer"] >= 150 - run["hold_steps"]
            inferred = await call(client, "policy_infer", policy=job)
            assert len(inferred["action"]) == 5 and inferred["observation_source"] == "simulator"
            rollouts = await call(client, "rollout_capture", policy=job, episodes=2)
            assert len(list(Path(rollouts["dir"]).glob("episode_*.npz"))) == 2

            # 5. stop everything: no process is left behind
            pids = [gateway["pid"]]
            assert (await call(client, "stop_gateway"))["done"] is True
            assert (await call(client, "stop_sim"))["done"] is True
            assert "no simulator" in await refused(client, "get_joint_state")
        return pids

    pids = anyio.run(main)
    assert not any(pid_alive(p) for p in pids)
    assert not [j for j in JobStore.at(logs).all() if JobStore.at(logs).counts_as_running(j)]
    leftovers = subprocess.run(["pgrep", "-f", str(logs)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes still running with {logs} in their command line: {leftovers}"


def _check_png(block) -> None:
    import base64

    from PIL import Image

    assert block.type == "image" and block.mime_type == "image/png"
    png = base64.b64decode(block.data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
    assert pixels.shape == (240, 320, 3) and pixels.std() > 10


def test_a_killed_server_leaves_no_simulator_behind(tmp_path):
    pid: dict[str, int] = {}

    async def main():
        with contextlib.suppress(BaseException):  # the client's stream may break with the server
            async with session(tmp_path / "logs") as client:
                pid["sim"] = (await call(client, "start_sim"))["pid"]
                assert pid_alive(pid["sim"]) and (await call(client, "get_joint_state"))["step"] >= 0
                server = int(Path(f"/proc/{pid['sim']}/stat").read_text().rsplit(")", 1)[1].split()[1])
                os.kill(server, signal.SIGKILL)  # no cleanup code runs: only the kernel's parent-death signal

    anyio.run(main)
    deadline = time.monotonic() + 15
    while pid_alive(pid["sim"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(pid["sim"])


# ---------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_a_message_that_says_what_to_do(tmp_path, export_dir):
    logs = tmp_path / "logs"
    run = install_export(export_dir, logs).name
    broken = install_export(export_dir, logs, "2026-01-02_00-00-00_broken")
    (broken / "exported" / "policy.onnx").write_bytes(b"not a model")

    async def main():
        async with session(logs) as client:
            msg = await refused(client, "policy_infer", policy=broken.name, observation=[0.0] * 29)
            assert "ONNX" in msg and "Error executing tool policy_infer:" in msg
            assert "list_runs" in await refused(client, "training_status", run_id="train-20260101-000000-abcd")
            assert "'..'" in await refused(client, "stop_training", run_id="train-../../x")
            assert "outside the project's run folders" in await refused(client, "evaluate_policy",
                                                                        checkpoint="/etc/passwd")
            assert "'..'" in await refused(client, "export_policy", checkpoint="../../../etc/passwd")
            assert "outside" in await refused(client, "start_gateway", policy="/tmp")
            msg = await refused(client, "start_training", overrides=["env.rewards.trackng.weight=1"])
            assert "env.rewards.trackng" in msg and "tracking" in msg  # the parser names the key and the choices
            assert "names code" in await refused(client, "start_training",
                                                 overrides=["env.observations.policy.joint_pos.func=os:system"])
            assert "must look like" in await refused(client, "start_training", overrides=["--log_root=/etc"])
            assert "RoArm-Reach-v0" in await refused(client, "start_training", task="RoArm-Nope-v0")

            await call(client, "start_sim")
            assert "already running" in await refused(client, "start_sim")
            before = await call(client, "get_joint_state")
            # JSON has no NaN: a client's NaN arrives as null and the argument check refuses it (the simulator's own
            # check, for callers that can send NaN, is in test_sim_service)
            msg = await refused(client, "set_joint_targets", targets=[0.0, float("nan"), 1.5, 0.0, 0.0])
            assert "targets" in msg and "valid number" in msg
            assert "5 values" in await refused(client, "set_joint_targets", targets=[0.1, 0.2])
            assert "unknown joint" in await refused(client, "set_joint_targets", targets={"knee": 0.1})
            after = await call(client, "get_joint_state")
            assert [j["goal_rad"] for j in after["joints"]] == [j["goal_rad"] for j in before["joints"]]
            wild = await call(client, "set_joint_targets", targets=[9.0, 0.0, 1.5, -5.0, 0.0], steps=0)
            assert wild["clamped"] == ["base", "wrist"]
            assert wild["applied_rad"][0] == pytest.approx(wild["state"]["joints"][0]["upper_rad"])
            assert wild["applied_rad"][3] == pytest.approx(wild["state"]["joints"][3]["lower_rad"])
            msg = await refused(client, "run_policy_in_sim", policy=run, target=[1.5, 0.0, 0.2])
            assert "nearest reachable point" in msg
            assert "start_gateway" in await refused(client, "run_policy_in_sim", use_gateway=True)
            assert "unknown camera" in await refused(client, "render_sim", camera="selfie")
            await call(client, "stop_sim")
    anyio.run(main)


def test_the_server_also_serves_streamable_http_on_loopback(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp_path / "http.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "roarm_lab.mcp_server", "--http", "--port", str(port), "--logs",
                               str(tmp_path / "logs")], stdout=log, stderr=log, cwd=ROOT)

    async def main():
        deadline = time.monotonic() + 60
        while True:
            try:
                async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                    return await call(client, "list_robots")
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                await anyio.sleep(0.5)

    try:
        robots = anyio.run(main)
        assert robots["robots"][0]["name"] == "roarm_m3"
        assert "127.0.0.1" in (tmp_path / "http.log").read_text()  # bound to loopback only
    finally:
        server.terminate()
        server.wait(20)
        log.close()


# ---------------------------------------------------------------------------- configuration and the Inspector
def _jsonc(path: Path) -> dict:
    return json.loads("\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("//")))


def test_vscode_configuration_starts_this_server_and_has_the_tasks():
    mcp = _jsonc(ROOT / ".vscode" / "mcp.json")
    server = mcp["servers"]["roarm-lab"]
    assert server["type"] == "stdio" and server["args"][:2] == ["-m", "roarm_lab.mcp_server"]
    assert "--allow-real-arm" not in server["args"]  # the default server never moves the real arm
    assert "--allow-real-arm" in mcp["servers"]["roarm-lab-real-arm"]["args"]
    used = set(re.findall(r"\$\{input:([^}]+)\}", json.dumps(mcp)))
    assert used <= {i["id"] for i in mcp["inputs"]}
    tasks = {t["label"] for t in _jsonc(ROOT / ".vscode" / "tasks.json")["tasks"]}
    for wanted in ("install", "tests", "quick train", "train", "play", "gateway", "emulator", "MCP server",
                   "environment check"):
        assert any(label.startswith(wanted) for label in tasks), wanted
    launch = _jsonc(ROOT / ".vscode" / "launch.json")["configurations"]
    assert all(c["type"] == "debugpy" for c in launch)
    targets = {c.get("program", c.get("module", "")).rsplit("/", 1)[-1] for c in launch}
    assert {"train.py", "play.py", "roarm_lab.mcp_server"} <= targets
    assert "github.copilot-chat" in _jsonc(ROOT / ".vscode" / "extensions.json")["recommendations"]


def test_the_mcp_inspector_cli_lists_and_calls_the_tools(tmp_path):
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx is not installed: the MCP Inspector check needs Node.js")
    params = server_params(tmp_path / "logs")
    base = [npx, "--yes", INSPECTOR, "--cli", params.command, *params.args]
    try:
        listed = subprocess.run([*base, "--method", "tools/list"], capture_output=True, text=True, timeout=300,
                                cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.skip("the MCP Inspector did not answer in 300 s (no npm registry reachable?)")
    if listed.returncode != 0 and "tools" not in listed.stdout:
        reason = (listed.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"npx could not run the MCP Inspector ({reason[:200]})")
    tools = json.loads(listed.stdout)["tools"]
    assert {t["name"] for t in tools} == ISSUE_TOOLS and all(t.get("outputSchema") for t in tools)
    bad = subprocess.run([*base, "--method", "tools/call", "--tool-name", "training_status", "--tool-arg",
                          "run_id=nope"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert bad.returncode == 5 and "list_runs" in bad.stdout  # a tool error, with the hint for the model
