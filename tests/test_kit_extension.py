"""The lab panel's Kit extension (exts/roarm_lab_panel) in a real Kit: Kit 6.2's kernel from PyPI in its own venv
(scripts/setup_kit.sh), headless on the CPU. Kit's extension manager loads the extension from its extension.toml,
startup and shutdown run, and its controller, on Kit's own update loop, talks to a running panel server: it starts
the simulator service and a tiny training job, sees the job's progress arrive, stops it. omni.ui, omni.usd and
PhysX are not installable here: the window and the stage service are not loaded (the test checks that too)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from panel_helpers import ROOT, address, panel_server

KIT_PYTHON = Path(os.environ.get("ROARM_KIT_PYTHON", ROOT / ".venv-kit" / "bin" / "python"))


def _kit_missing() -> str | None:
    if not KIT_PYTHON.is_file():
        return f"no Kit venv at {KIT_PYTHON}: run scripts/setup_kit.sh (or set ROARM_KIT_PYTHON)"
    probe = subprocess.run([str(KIT_PYTHON), "-c", "import importlib.util, pathlib; print(pathlib.Path(importlib.util."
                            "find_spec('isaacsim').origin).parent / 'kit' / 'kit_app.py')"], capture_output=True, text=True)
    if probe.returncode or not Path(probe.stdout.strip()).is_file():
        return f"{KIT_PYTHON} has no Kit kernel (isaacsim-kernel): run scripts/setup_kit.sh"
    return None


def test_the_extension_loads_in_kit_and_its_controller_drives_the_simulator_and_a_training_job(tmp_path):
    missing = _kit_missing()
    if missing:
        print(f"SKIPPED: {missing}")
        pytest.skip(missing)
    out = tmp_path / "kit.json"
    with panel_server(tmp_path / "logs") as (url, _proc):
        # the address without its token: the extension reads the token file the panel wrote (its setting)
        token_file = tmp_path / "logs" / "panel" / f"{address(url)[1]}.token"
        run = subprocess.run([str(KIT_PYTHON), str(ROOT / "tests" / "panel_kit_driver.py"), "--url", url.split("?")[0],
                              "--token-file", str(token_file), "--exts", str(ROOT / "exts"), "--out", str(out)],
                             cwd=ROOT, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "OMNI_KIT_ACCEPT_EULA": "YES"})
    assert out.is_file(), f"Kit did not run the driver (exit {run.returncode}): {run.stdout[-3000:]} {run.stderr[-3000:]}"
    r = json.loads(out.read_text())
    assert r["ok"], f"{r.get('error')}\n{r.get('traceback')}\n{run.stdout[-3000:]}"

    # Kit's extension manager read our extension.toml and started the IExt module it names
    ext = r["extension"]
    assert ext["enabled"] and not ext["failed"]
    assert ext["modules"] == ["roarm_lab_panel.extension"] and ext["title"] == "RoArm Lab panel"
    assert Path(ext["config"]) == ROOT / "exts" / "roarm_lab_panel" / "config" / "extension.toml"
    # no omni.ui / Isaac Sim here: the window and the stage service stay off, and say so
    assert not ext["window"] and any("omni.ui" in n for n in ext["notes"])

    # a dead server is a message a person can act on, not a hang
    assert r["dead_server"]["connected"] is False and "roarm-panel" in r["dead_server"]["error"]
    assert "RoArm-Reach-v0" in r["connected"]["tasks"]

    # the simulator service runs and advances (real time) while Kit keeps updating
    assert len(r["sim_steps"]) >= 3 and r["sim_steps"] == sorted(r["sim_steps"])
    assert r["updates_during"]["start_sim"] > 1, "Kit's loop did not update while the simulator started"

    # a tiny training job: progress arrives on Kit's update loop, a second press starts nothing, stop stops it
    assert r["start_training"]["already_running"] is False
    assert r["again"]["already_running"] is True and r["again"]["job_id"] == r["start_training"]["job_id"]
    assert max(r["progress_seen"]) >= 2
    assert r["final_job"]["state"] == "stopped" and r["final_job"]["iteration"] < r["final_job"]["total_iterations"]
    assert r["stop_sim"]["message"] == "simulator stopped"

    # shutdown: no more updates reach the extension, no coroutine is left
    assert r["shutdown"] == {"enabled": False, "instance": False, "updates_after_disable": 0, "tasks_left": 0}
    assert run.returncode == 0, f"Kit exited with {run.returncode} after a clean shutdown: {run.stdout[-2000:]}"


def test_the_extension_package_imports_without_omni_and_every_module_compiles():
    """Kit-free Python imports the package (as Isaac Lab's template asks); the Kit-only modules at least compile."""
    code = ("import sys, py_compile, pathlib; sys.path.insert(0, 'exts/roarm_lab_panel'); import roarm_lab_panel; "
            "assert not [m for m in sys.modules if m.startswith('omni') or m == 'carb'], 'omni imported'; "
            "[py_compile.compile(str(p), doraise=True) for p in pathlib.Path('exts/roarm_lab_panel').rglob('*.py')]; "
            "print(sorted(roarm_lab_panel.__all__))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "PanelController" in run.stdout


def test_the_extensions_client_finds_the_token_the_panel_wrote_for_its_port(tmp_path, monkeypatch):
    """Kit-free: the extension's HTTP client against a real panel, with the token read from the panel's token file
    at each request (a panel started after Kit, or again with a new token, is found); without it, refused."""
    monkeypatch.syspath_prepend(str(ROOT / "exts" / "roarm_lab_panel"))
    from roarm_lab_panel.client import PanelClient, PanelRefused, read_token_file, token_file

    assert token_file("http://127.0.0.1:8780/") == ROOT / "logs" / "panel" / "8780.token"
    logs = tmp_path / "logs"
    with panel_server(logs) as (url, _):
        base, port = url.split("?")[0], address(url)[1]
        client = PanelClient(base)
        client.token_file = logs / "panel" / f"{port}.token"
        assert asyncio.run(client.get("/api/state"))["real"]["stop_latched"] is False
        assert asyncio.run(PanelClient(url).get("/api/state"))["jobs"] == []  # the printed address carries it
        client.token_file.chmod(0o640)
        with pytest.raises(PanelRefused, match="token.*chmod 600"):
            asyncio.run(client.get("/api/state"))
        with pytest.raises(ValueError, match="chmod 600"):
            read_token_file(client.token_file)
        client.token_file.chmod(0o600)
        with pytest.raises(PanelRefused, match="needs its token"):
            asyncio.run(PanelClient(base, "x" * 43).get("/api/state"))
