"""The robot description: firmware FK poses, the generated URDF, the compiled MJCF, the joint mapping."""

from __future__ import annotations

from pathlib import Path

import math
import subprocess
import sys

import mujoco
import numpy as np
import pytest

from roarm_lab.assets import joint_table as jt
from roarm_lab.assets.kinematics import tcp_positions_world, world_to_firmware_mm
from roarm_lab.assets.mjcf import build_model
from roarm_lab.assets.urdf import URDF_PATH, build_urdf

# (q base, shoulder, elbow, wrist) -> the firmware's own FK (mm), from ROARM_M3.md
FIRMWARE_POSES = [
    ((0.0, 0.0, 1.571, 0.0), (346.2, 0.0, 223.1)),
    ((0.5, 0.3, 1.2, 0.4), (351.7, 192.2, 159.1)),
    ((-0.7, -0.4, 2.0, -0.6), (177.2, -149.3, 306.8)),
]


@pytest.mark.parametrize("q, firmware_mm", FIRMWARE_POSES)
def test_tcp_matches_firmware_fk_within_5mm(q, firmware_mm):
    tcp = world_to_firmware_mm(tcp_positions_world(np.array([q]))[0])
    assert np.linalg.norm(tcp - np.array(firmware_mm)) < 5.0


def test_home_pose_world_positions_match_the_facts():
    model = build_model()
    data = mujoco.MjData(model)
    data.qpos[:] = jt.home_pose()
    mujoco.mj_kinematics(model, data)
    np.testing.assert_allclose(data.site("hand_tcp").xpos, [0.3437, 0.0, 0.3437], atol=1e-3)
    np.testing.assert_allclose(data.site("hand_tcp").xmat.reshape(3, 3), np.eye(3), atol=1e-6)
    np.testing.assert_allclose(data.body("link3").xpos, [0.030, 0.0, 0.3589], atol=1e-3)  # elbow


def test_committed_urdf_is_the_generated_one():
    assert URDF_PATH.read_text() == build_urdf(), "regenerate with: python -m roarm_lab.assets.urdf"


def test_urdf_names_no_upstream_repository_and_uses_primitive_shapes():
    text = URDF_PATH.read_text()
    assert "mesh" not in text and "roarm_ws" not in text and "waveshareteam" not in text
    # a visual and a collision box per link, and the hand's palm, jaws and hub instead of two envelopes
    assert text.count("<box") == 2 * (7 - 2 + 4)


def test_mjcf_actuators_limits_and_site_come_from_the_joint_table():
    model = build_model()
    assert model.site("hand_tcp").id >= 0
    for j in jt.JOINTS:
        act = model.actuator(j.short)
        jnt = model.joint(j.name)
        assert act.gainprm[0] == pytest.approx(j.kp)
        assert act.biasprm[2] == pytest.approx(-j.kv)
        np.testing.assert_allclose(act.forcerange, [-j.effort, j.effort])
        np.testing.assert_allclose(act.ctrlrange, [j.lower, j.upper])
        np.testing.assert_allclose(jnt.range, [j.lower, j.upper])
        assert model.dof_armature[jnt.dofadr[0]] == pytest.approx(j.armature)


def test_home_pose_has_no_contacts_and_holds_still():
    model = build_model()
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key("home").id)
    for _ in range(120):
        mujoco.mj_step(model, data)
    assert data.ncon == 0
    np.testing.assert_allclose(data.qpos, jt.home_pose(), atol=0.02)  # sags < 0.02 rad under gravity


SRDF = Path(__file__).resolve().parents[2] / "shared" / "robot" / "reference" / "roarm_m3.srdf"


@pytest.mark.skipif(not SRDF.is_file(), reason="Waveshare's SRDF (shared/robot/reference) is not beside the checkout")
def test_every_pair_the_srdf_disables_is_excluded_in_the_compiled_model():
    """Checked against Waveshare's own SRDF (read, not copied), not against the list the model was built from."""
    from xml.etree import ElementTree as ET

    srdf = {frozenset((d.get("link1"), d.get("link2"))) for d in ET.parse(SRDF).getroot().iter("disable_collisions")}
    model = build_model()
    excluded = {frozenset((model.body(b1).name, model.body(b2).name)) for b1, b2 in
                (divmod(int(sig), 1 << 16) for sig in model.exclude_signature)}
    assert len(srdf) == 12 and srdf <= excluded, sorted(tuple(p) for p in srdf - excluded)


def test_export_mjcf_command_writes_a_loadable_model(tmp_path):
    out = tmp_path / "roarm.xml"
    subprocess.run([sys.executable, "-m", "roarm_lab.assets.export_mjcf", str(out)], check=True)
    model = mujoco.MjModel.from_xml_path(str(out))
    assert model.nu == 6 and model.site("hand_tcp").id >= 0


def test_gripper_firmware_mapping_is_pi_minus_q_and_round_trips():
    cmd = jt.to_firmware_command({"base": 0.3, "gripper": 1.5})
    assert cmd == {"base": 0.3, "hand": pytest.approx(math.pi - 1.5)}
    fb = {"b": 0.1, "s": 0.2, "e": 1.5, "t": -0.3, "r": 0.0, "g": math.pi}
    q = jt.from_firmware_feedback(fb)
    assert q["gripper"] == pytest.approx(0.0) and q["wrist"] == pytest.approx(-0.3)


def test_unknown_joint_name_lists_the_valid_ones():
    with pytest.raises(KeyError, match="valid"):
        jt.joint("knee")
