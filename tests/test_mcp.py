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

from mcp_helpers import ROOT, ToolFailed, answer, call, install_export, parsed, refused, server_params, session
from roarm_lab.control.jobs import JobStore
from roarm_lab.control.process import running as pid_alive

ISSUE_TOOLS = {"start_sim", "stop_sim", "list_robots", "load_robot", "get_joint_state", "set_joint_targets",
               "apply_action", "capture_observation", "policy_infer", "rollout_capture", "render_sim",
               "run_policy_in_sim", "start_training", "training_status", "stop_training", "list_runs",
               "evaluate_policy", "export_policy", "start_gateway", "gateway_stats", "stop_gateway", "real_arm_status",
               "run_policy_on_real_arm", "emergency_stop", "check_environment"}
READ_ONLY = {"get_joint_state", "capture_observation", "policy_infer", "render_sim", "training_status", "list_runs",
             "gateway_stats", "real_arm_status", "check_environment", "list_robots", "load_robot", "wait_for_job",
             "plot_training", "compare_runs", "tail_log", "list_tasks", "sweep_status"}
NEW_TOOLS = {"stop_policy", "reset_sim", "set_target", "wait_for_job", "plot_training", "compare_runs", "tail_log",
             "resume_training", "render_rollout", "delete_run", "start_tensorboard", "list_tasks", "start_sweep",
             "sweep_status", "stop_sweep"}
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


def test_the_tools_have_the_issues_names_described_bounded_parameters_and_annotations(tmp_path):
    from roarm_lab.mcp_server.server import build_server
    from roarm_lab.control.settings import LabSettings
    from roarm_lab.control.layout import ProjectPaths

    async def main():
        async with Client(build_server(LabSettings(paths=ProjectPaths.at(None, tmp_path / "logs")))) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            prompts = {p.name: p for p in (await client.list_prompts()).prompts}
            templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        return tools, prompts, templates

    tools, prompts, templates = anyio.run(main)
    assert set(tools) == ISSUE_TOOLS | NEW_TOOLS and len(tools) <= 40  # Copilot caps a request at 128 tools in all
    for name, tool in tools.items():
        assert tool.description and 40 < len(tool.description) < 400 and "\n    " not in tool.description, name
        assert tool.output_schema is None, name  # one compact text per result: no schema to pay for in every chat
        assert tool.annotations is not None, name
        assert bool(tool.annotations.read_only_hint) == (name in READ_ONLY), name
        for param, schema in tool.input_schema.get("properties", {}).items():
            assert schema.get("description"), f"{name}.{param} has no description"
            if schema.get("type") in ("integer", "number") and param != "before":
                assert "minimum" in schema and "maximum" in schema, f"{name}.{param} has no range in its schema"
    assert tools["render_sim"].input_schema["properties"]["camera"]["enum"] == ["iso", "front", "side", "top", "near"]
    assert tools["tail_log"].input_schema["properties"]["source"]["enum"] == ["job", "sim", "gateway"]
    assert tools["run_policy_on_real_arm"].annotations.destructive_hint is True
    assert tools["run_policy_on_real_arm"].input_schema["properties"]["dry_run"]["default"] is True
    assert "confirmation" not in tools["run_policy_on_real_arm"].input_schema["properties"]  # filled by the server
    assert {"train_evaluate_try", "compare_runs"} <= set(prompts)
    assert all(a.description for p in prompts.values() for a in p.arguments or [])
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
    assert str(written).endswith(report["report_file"]) and all(name in written.read_text() for name in rows)
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_env.py"), "--logs", str(tmp_path / "cli")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "runtime: embedded" in out.stdout
    assert len(list((tmp_path / "cli").glob("env_diag_*.txt"))) == 1 and "written to" in out.stdout


# ---------------------------------------------------------------------------- the scenario
TOOLS_LIST_MAX_CHARS = 30_000
RESULT_MAX_CHARS = 2_000


class Chat:
    """A Copilot-like chat: every answer the model reads is measured; progress and log messages are kept."""

    def __init__(self, client: Client):
        self.client = client
        self.sizes: dict[str, int] = {}
        self.progress: list[tuple[float, float | None, str | None]] = []
        self.logs: list[str] = []

    async def call(self, tool: str, **arguments):
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            self.progress.append((progress, total, message))

        result = await self.client.call_tool(tool, arguments, progress_callback=on_progress)
        text = "".join(c.text for c in result.content if c.type == "text")
        self.sizes[tool] = max(self.sizes.get(tool, 0), len(text))
        if result.is_error:
            raise ToolFailed(text)
        return result

    async def json(self, tool: str, **arguments):
        return parsed(await self.call(tool, **arguments))

    async def refused(self, tool: str, **arguments) -> str:
        with pytest.raises(ToolFailed) as refusal:
            await self.call(tool, **arguments)
        return str(refusal.value)


@pytest.mark.long
def test_a_chat_trains_follows_compares_runs_and_steers_the_simulator_without_flooding_its_context(tmp_path):
    """The whole conversation of the chat-face issue through the official client in one session: a typed mistake,
    a training echoed and followed with progress, its curves and log, evaluation and export, the simulator driven
    and filmed, a policy run cancelled from the client and one stopped with stop_policy, a declined deletion,
    the sizes of everything the model reads, and nothing left running."""
    logs = tmp_path / "logs"
    target = _target_b()
    asked: list[str] = []
    log_lines: list[str] = []

    async def on_log(params) -> None:
        log_lines.append(str(params.data))

    async def main():
        async with Client(server_params(logs), elicitation_callback=answer(None, asked), logging_callback=on_log,
                          log_level="info", read_timeout_seconds=180) as client:
            chat = Chat(client)
            tools = (await client.list_tools()).tools
            listed = json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools])
            assert len(listed) <= TOOLS_LIST_MAX_CHARS, len(listed)
            assert NEW_TOOLS <= {t.name for t in tools}

            # a typed mistake: one sentence naming the field and its range, and nothing starts
            msg = await chat.refused("start_training", max_iterations="abc")
            assert msg == 'start_training: max_iterations must be a whole number from 1 to 100000, got "abc".'
            assert "null" in await chat.refused("start_training", max_iterations=None)
            assert JobStore.at(logs).all() == []

            # a training: the plan is echoed, and wait_for_job follows it with progress and log lines
            started = await chat.json("start_training", num_envs=TRAIN_ENVS, max_iterations=TRAIN_ITERATIONS,
                                      overrides=TRAIN_OVERRIDES, run_name="chat")
            plan = started["plan"]
            assert (plan["num_envs"], plan["max_iterations"]) == (TRAIN_ENVS, TRAIN_ITERATIONS)
            assert plan["expected_minutes"] > 0 and "docs/benchmarks.md" in plan["estimate_basis"]
            job = started["job_id"]
            done = await chat.json("wait_for_job", ref=job, timeout_s=0.5)
            assert done["done"] is False and "wait_for_job" in done["next"]
            while not done["done"]:
                done = await chat.json("wait_for_job", ref=job, timeout_s=120)
            assert done["state"] == "succeeded" and done["iteration"] == TRAIN_ITERATIONS, done
            fractions = [p for p, total, _ in chat.progress if total == 1.0]
            assert fractions == sorted(fractions) and any(0 < f < 1 for f in fractions) and fractions[-1] == 1.0, \
                chat.progress
            assert any(job in line and "running" in line for line in log_lines), log_lines
            run = done["run_id"]

            # what a chat user asks of it: curves, a table, a log page, TensorBoard, resources, completions
            curves = await chat.call("plot_training", run_ids=[run])
            _check_png(curves.content[0], (416, 512))
            table = await chat.json("compare_runs", run_ids=[run])
            assert table.splitlines()[0].startswith("| run_id |") and run in table
            page = await chat.json("tail_log", ref=job, lines=10)
            assert len(page["lines"]) == 10 and not any("Linear(" in line for line in page["lines"])
            older = await chat.json("tail_log", ref=job, lines=10, before=page["older"])
            assert older["first_line"] == page["first_line"] - 10
            board = await chat.json("start_tensorboard")
            assert board["url"].startswith("http://127.0.0.1:")
            uris = {str(r.uri) for r in (await client.list_resources()).resources}
            assert f"roarm://runs/{run}/console" in uris
            console = (await client.read_resource(f"roarm://runs/{run}/console")).contents[0].text
            assert len(console.splitlines()) <= 100
            from mcp.types import ResourceTemplateReference

            completion = await client.complete(ResourceTemplateReference(type="ref/resource",
                                                                         uri="roarm://runs/{run_id}/console"),
                                               {"name": "run_id", "value": run[:4]})
            assert completion.completion.values == [run]

            # evaluation and export, as jobs; a run started while the export runs is told to wait for it
            evaluation = await chat.json("evaluate_policy", run_id=job, episodes=16)
            result = await chat.json("wait_for_job", ref=evaluation["job_id"], timeout_s=120)
            assert result["state"] == "succeeded" and result["metrics"]["episodes"] == 16, result
            assert (await chat.json("export_policy", run_id=job))["up_to_date"] is True

            # the simulator: look, move the target, run the policy, film it
            await chat.json("start_sim")
            picture = await chat.call("render_sim", width=320, height=240)
            _check_png(picture.content[0], (240, 320))
            msg = await chat.refused("set_target", target=[0.1, 0.2])
            assert msg == "set_target: target must be a list of 3 numbers, got [0.1, 0.2]."
            assert "nearest reachable point" in await chat.refused("set_target", target=[1.5, 0.0, 0.2])
            await chat.json("set_target", target=target)
            ran = await chat.json("run_policy_in_sim", policy=run, max_steps=150, until_reached=False)
            assert ran["done"] and ran["stopped"] == "max_steps" and ran["steps"] == 150 and ran["run_id"]
            assert ran["final_error_m"] < 0.6 * ran["initial_error_m"], ran
            film = await chat.call("render_rollout", policy=run, steps=60, frames=8)
            _check_png(film.content[0], (480, 1280))
            gif = Path(parsed(film)["gif"])
            assert gif.name.endswith(".gif") and (gif if gif.is_absolute() else ROOT / gif).read_bytes()[:6] == b"GIF89a"

            # a long run cancelled from the client stops; another is stopped with stop_policy. The call is cancelled
            # at its first progress report, which comes before the run can end (a fixed second was not: the fused
            # managers step one environment fast enough to run all 3000 steps in it)
            await chat.json("reset_sim", target=target)
            reports = len(chat.progress)
            with anyio.CancelScope() as scope:
                async def cancel_at_first_report():
                    while len(chat.progress) == reports:
                        await anyio.sleep(0.001)
                    scope.cancel()

                async with anyio.create_task_group() as group:
                    group.start_soon(cancel_at_first_report)
                    await chat.call("run_policy_in_sim", policy=run, max_steps=3000, until_reached=False)
            assert scope.cancelled_caught
            await anyio.sleep(0.5)
            state = await chat.json("get_joint_state")
            assert state.get("controller") in (None, {}) or state["controller"].get("done", True), state
            last = await chat.json("stop_policy")
            assert last["stopped"] == "stopped" and last["steps"] < 3000, last

            # deleting a run asks; a decline leaves it
            msg = await chat.refused("delete_run", run_id=run)
            assert msg == f"delete {run}: you declined the confirmation, so nothing was done"
            assert asked and run in asked[-1] and (await chat.json("list_runs"))["runs"][0]["run_id"] == run

            # the emergency stop on a simulation-only server latches nothing
            stopped = await chat.json("emergency_stop")
            assert stopped["latched"] is False and "stop_file" not in stopped
            assert not (logs / "real" / "STOP").exists()
            await chat.json("stop_sim")
            return chat.sizes

    sizes = anyio.run(main)
    print("largest results (chars):", sorted(sizes.items(), key=lambda kv: -kv[1])[:8])
    big = {tool: n for tool, n in sizes.items() if n > RESULT_MAX_CHARS}
    assert not big, f"results over {RESULT_MAX_CHARS} characters: {big}"
    assert not [j for j in JobStore.at(logs).all() if JobStore.at(logs).counts_as_running(j)]
    leftovers = subprocess.run(["pgrep", "-f", str(logs)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes still running with {logs} in their command line: {leftovers}"


def test_a_training_job_outlives_the_server_that_started_it(tmp_path):
    logs = tmp_path / "logs"

    async def main():
        async with session(logs) as client:
            job = (await call(client, "start_training", num_envs=64, max_iterations=3, run_name="outlive"))["job_id"]
        async with session(logs) as client:  # a new server process: the job is read back from disk
            done = await call(client, "wait_for_job", ref=job, timeout_s=110)
            while not done["done"]:
                done = await call(client, "wait_for_job", ref=job, timeout_s=110)
            return done

    done = anyio.run(main)
    assert done["state"] == "succeeded" and done["iteration"] == done["total_iterations"] == 3, done


def _check_png(block, shape: tuple[int, int]) -> None:
    import base64

    from PIL import Image

    assert block.type == "image" and block.mime_type == "image/png"
    png = base64.b64decode(block.data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
    assert pixels.shape == (*shape, 3) and pixels.std() > 10


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
            assert "ONNX" in msg and not msg.startswith("Error executing tool")
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
            assert msg.startswith("set_joint_targets: targets must be a list of numbers") and "at targets[1]" in msg
            assert "5 values" in await refused(client, "set_joint_targets", targets=[0.1, 0.2])
            assert "unknown joint" in await refused(client, "set_joint_targets", targets={"knee": 0.1})
            after = await call(client, "get_joint_state")
            assert [j.get("goal_rad") for j in after["joints"]] == [j.get("goal_rad") for j in before["joints"]]
            wild = await call(client, "set_joint_targets", targets=[9.0, 0.0, 1.5, -5.0, 0.0], steps=0)
            assert wild["clamped"] == ["base", "wrist"]
            assert wild["applied_rad"][0] == pytest.approx(wild["state"]["joints"][0]["upper_rad"])
            assert wild["applied_rad"][3] == pytest.approx(wild["state"]["joints"][3]["lower_rad"])
            msg = await refused(client, "run_policy_in_sim", policy=run, target=[1.5, 0.0, 0.2])
            assert "nearest reachable point" in msg
            assert "start_gateway" in await refused(client, "run_policy_in_sim", use_gateway=True)
            msg = await refused(client, "render_sim", camera="selfie")
            assert msg == 'render_sim: camera must be one of "iso", "front", "side", "top", "near", got "selfie".'
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


def test_the_mcp_inspector_cli_lists_tools_resources_and_prompts_and_calls_a_tool(tmp_path, export_dir):
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("npx is not installed: the MCP Inspector check needs Node.js")
    run = install_export(export_dir, tmp_path / "logs").name
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
    assert {t["name"] for t in tools} == ISSUE_TOOLS | NEW_TOOLS
    listed = {}
    for method, key in (("resources/list", "resources"), ("resources/templates/list", "resourceTemplates"),
                        ("prompts/list", "prompts")):
        out = subprocess.run([*base, "--method", method], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert out.returncode == 0, (method, out.stdout[-300:], out.stderr[-300:])
        listed[key] = json.loads(out.stdout)[key]
    assert f"roarm://runs/{run}/policy.json" in {r["uri"] for r in listed["resources"]}
    assert {p["name"] for p in listed["prompts"]} == {"train_evaluate_try", "compare_runs"}
    bad = subprocess.run([*base, "--method", "tools/call", "--tool-name", "training_status", "--tool-arg",
                          "run_id=nope"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert bad.returncode == 5 and "list_runs" in bad.stdout  # a tool error, with the hint for the model
