"""``roarm-usd inspect``: the project's own USD matches the joint table; an edited copy is caught, and the diff it
proposes applies and changes only the edited joint; the MCP ``load_robot(usd_path)`` reads USDs only inside the
project folder. Needs ``pxr`` (``pip install -e ".[usd]"``); where it is absent only the install hint is checked."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import math
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from mcp_helpers import ROOT, call, refused, session
from roarm_lab.assets.joint_table import HALF_PI, JOINTS
from roarm_lab.control.layout import PathError, ProjectPaths

HAVE_PXR = importlib.util.find_spec("pxr") is not None
needs_pxr = pytest.mark.skipif(not HAVE_PXR, reason='needs pxr (OpenUSD): pip install -e ".[usd]"')
TABLE = ROOT / "source" / "roarm_lab" / "assets" / "joint_table.py"
EDITED = "link2_to_link3"
EDITED_UPPER = 2.5
"""The elbow's new upper limit (rad) in the edited copy; the table says 2.73."""


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def write_project_usd(out: Path) -> Path:
    """The project's USD, written by the project's own writer (as a person would run it)."""
    done = run("-m", "roarm_lab.assets.usd", str(out))
    assert done.returncode == 0, done.stderr
    return out


def edited_copy(source: Path, out: Path) -> Path:
    """``source`` with one joint's upper limit changed in the stage (degrees, as UsdPhysics stores it)."""
    from pxr import Usd, UsdPhysics

    stage = Usd.Stage.Open(str(source))
    joint = UsdPhysics.RevoluteJoint(stage.GetPrimAtPath(f"/roarm_m3/joints/{EDITED}"))
    joint.GetUpperLimitAttr().Set(math.degrees(EDITED_UPPER))
    stage.GetRootLayer().Export(str(out))
    return out


@pytest.fixture
def repo_logs_folder():
    """A fresh folder under the checkout's git-ignored logs/ (inside the project root), removed afterwards."""
    folder = ROOT / "logs" / f"test-usd-inspect-{secrets.token_hex(4)}"
    folder.mkdir(parents=True)
    assert subprocess.run(["git", "check-ignore", "-q", str(folder / "arm.usda")], cwd=ROOT).returncode == 0
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(HAVE_PXR, reason="checks the refusal where pxr is absent")
def test_without_pxr_the_writer_names_the_extra_in_one_line(tmp_path):
    for args in (["-m", "roarm_lab.assets.usd", str(tmp_path / "arm.usda")],
                 ["-m", "roarm_lab.assets.usd_inspect", "inspect", str(tmp_path / "arm.usda")]):
        done = run(*args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and 'pip install -e ".[usd]"' in done.stderr
    assert not list(tmp_path.iterdir())


@needs_pxr
def test_the_projects_own_usd_matches_the_joint_table(tmp_path):
    from roarm_lab.assets.links import LINKS
    from roarm_lab.assets.usd import USD_PATH
    from roarm_lab.assets.usd_inspect import inspect_usd

    usd = write_project_usd(tmp_path / "arm.usda")
    assert usd.read_text() == USD_PATH.read_text()  # the committed file is the writer's output here too
    inspection = inspect_usd(usd)
    assert inspection.comparison.matches, inspection.comparison.as_dict()
    assert [j.name for j in inspection.joints] == [j.name for j in JOINTS]
    for found, spec in zip(inspection.joints, JOINTS):
        assert found.type == "revolute" and found.axis == "Z"
        assert (found.body0, found.body1) == (f"/roarm_m3/{spec.parent}", f"/roarm_m3/{spec.child}")
        assert found.lower == pytest.approx(spec.lower, abs=1e-6) and found.upper == pytest.approx(spec.upper, abs=1e-6)
    masses = {b.name: b.mass_kg for b in inspection.bodies}
    for link in LINKS:
        assert masses[link.name] == pytest.approx(link.mass, rel=1e-6)
    assert "hand_tcp" in masses

    done = run("-m", "roarm_lab.assets.usd_inspect", "inspect", str(usd))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "matches the joint table" in done.stdout and all(j.name in done.stdout for j in JOINTS)


@needs_pxr
def test_an_edited_limit_is_reported_and_the_proposed_diff_changes_only_that_joint(tmp_path):
    from roarm_lab.assets.usd_inspect import _limit_nodes, inspect_usd

    usd = edited_copy(write_project_usd(tmp_path / "arm.usda"), tmp_path / "edited.usda")
    comparison = inspect_usd(usd).comparison
    assert not comparison.matches and not (comparison.missing or comparison.extra or comparison.bodies)
    assert [d.joint for d in comparison.limits] == [EDITED]
    assert comparison.limits[0].usd[1] == pytest.approx(EDITED_UPPER, abs=1e-6)

    table_before = hashlib.sha256(TABLE.read_bytes()).hexdigest()
    diff = tmp_path / "joints.diff"
    done = run("-m", "roarm_lab.assets.usd_inspect", "inspect", str(usd), "--update-joints", str(diff))
    assert done.returncode == 1, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith(EDITED))
    assert row.split()[-1] == "limits" and "2.5000" in row and "2.7300" in row
    assert hashlib.sha256(TABLE.read_bytes()).hexdigest() == table_before  # the table is never written
    text = diff.read_text()
    assert subprocess.run(["git", "apply", "--check", str(diff)], cwd=ROOT, capture_output=True).returncode == 0, text
    removed = [line for line in text.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line for line in text.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert len(removed) == len(added) == 1 and removed[0][1:].replace("2.73", "2.5") == added[0][1:], text

    # applied to a copy of the table: that joint's upper limit is the USD's, every other number is the table's
    copy = tmp_path / "checkout"
    (copy / TABLE.relative_to(ROOT)).parent.mkdir(parents=True)
    shutil.copy(TABLE, copy / TABLE.relative_to(ROOT))
    subprocess.run(["git", "apply", str(diff)], cwd=copy, check=True, capture_output=True)
    nodes = _limit_nodes((copy / TABLE.relative_to(ROOT)).read_text())
    names = {"math": math, "HALF_PI": HALF_PI}
    for spec in JOINTS:
        lower, upper = (eval(ast.unparse(node), names) for node in nodes[spec.name])
        assert lower == spec.lower
        assert upper == (EDITED_UPPER if spec.name == EDITED else spec.upper)


@needs_pxr
def test_the_json_output_and_a_file_that_is_not_usd(tmp_path):
    import json

    usd = write_project_usd(tmp_path / "arm.usda")
    done = run("-m", "roarm_lab.assets.usd_inspect", "inspect", str(usd), "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["comparison"]["matches"] is True and len(report["joints"]) == len(JOINTS)
    not_usd = tmp_path / "notes.usda"
    not_usd.write_text("not a stage\n")
    done = run("-m", "roarm_lab.assets.usd_inspect", "inspect", str(not_usd))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    done = run("-m", "roarm_lab.assets.usd_inspect", "inspect", str(usd), "--update-joints", str(TABLE))
    assert done.returncode == 2 and "never the table itself" in done.stderr


@needs_pxr
def test_the_core_reads_usds_only_inside_the_project_folder(tmp_path, repo_logs_folder):
    from roarm_lab.control.robots import inspect_robot_usd, usd_in_project

    paths = ProjectPaths.at()
    outside = write_project_usd(tmp_path / "arm.usda")
    for value in (str(outside), f"logs/../../{outside.name}", "/etc/hostname"):
        with pytest.raises(PathError, match=f"outside the project folder {paths.root}"):
            inspect_robot_usd(paths, value)
    link = repo_logs_folder / "link.usda"
    link.symlink_to(outside)  # inside by name, outside once the link is followed
    with pytest.raises(PathError, match="outside the project folder"):
        usd_in_project(paths, str(link.relative_to(paths.root)))
    with pytest.raises(PathError, match="not a file in the project folder"):
        usd_in_project(paths, "logs/no-such.usda")
    inside = shutil.copy(outside, repo_logs_folder / "arm.usda")
    summary = inspect_robot_usd(paths, str(Path(inside).relative_to(paths.root)))
    assert summary["comparison"]["matches"] is True and summary["usd_path"].startswith("logs/")


@needs_pxr
def test_mcp_load_robot_compares_a_usd_in_the_project_folder(tmp_path, repo_logs_folder):
    usd = write_project_usd(repo_logs_folder / "arm.usda")
    edited = edited_copy(usd, repo_logs_folder / "edited.usda")
    outside = shutil.copy(usd, tmp_path / "outside.usda")

    async def main():
        async with session(tmp_path / "logs") as client:
            plain = await call(client, "load_robot", name="roarm_m3")
            same = await call(client, "load_robot", name="roarm_m3", usd_path=str(usd.relative_to(ROOT)))
            other = await call(client, "load_robot", name="roarm_m3", usd_path=str(edited))
            refusal = await refused(client, "load_robot", name="roarm_m3", usd_path=str(outside))
            return plain, same, other, refusal

    plain, same, other, refusal = anyio.run(main)
    assert "tasks" in plain and "comparison" not in plain  # the name alone still describes the robot
    assert same["comparison"]["matches"] is True and [j["name"] for j in same["joints"]] == [j.name for j in JOINTS]
    assert {b["name"] for b in same["bodies"]} >= {"base_link", "gripper_link", "hand_tcp"}
    assert other["comparison"]["matches"] is False
    assert other["comparison"]["limits"] == [{"joint": EDITED, "table": [-0.37, 2.73], "usd": [-0.37, EDITED_UPPER]}]
    assert "outside the project folder" in refusal and str(ROOT) in refusal


def test_a_usd_that_composes_a_layer_outside_the_project_is_refused_before_it_is_opened(tmp_path, repo_logs_folder):
    pytest.importorskip("pxr", reason='usd-core is not installed: pip install -e ".[usd]"')
    from roarm_lab.control.errors import ControlError
    from roarm_lab.control.robots import inspect_robot_usd

    outside = tmp_path / "outside.usda"
    outside.write_text("#usda 1.0\n")
    composed = repo_logs_folder / "robot.usda"
    composed.write_text(f"#usda 1.0\n(\n    subLayers = [@{outside}@]\n)\n")
    with pytest.raises(ControlError, match="outside the project folder"):
        inspect_robot_usd(ProjectPaths.at(), str(composed))
