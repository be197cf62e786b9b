"""One task, two runtimes: the same checks run on the embedded runtime (default venv) and on Isaac Lab 3 on Newton
(``.ci/run`` runs this module in the Isaac Lab venv too). Every event term is checked by reading its effect back
from the asset or the servo model, and by the physical effect it should have on the simulated arm.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from roarm_lab.assets.joint_table import ARM_JOINTS
from roarm_lab.assets.links import LINKS
from task_edits import only_events, raw_servo

LAYOUT_FILE = Path(__file__).parent / "data" / "reach_observation_layout.json"
ARM = len(ARM_JOINTS)


def hold(env, steps: int, action: torch.Tensor | None = None) -> None:
    action = torch.zeros(env.num_envs, ARM) if action is None else action
    for _ in range(steps):
        env.step(action)


def data(env):
    return env.scene["robot"].data


def test_the_task_builds_and_200_randomized_steps_stay_finite(make_reach_env):
    env = make_reach_env(num_envs=8)
    obs, _ = env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        obs, reward, terminated, truncated, extras = env.step(torch.randn(8, ARM, generator=gen))
        assert torch.isfinite(obs["policy"]).all() and torch.isfinite(obs["critic"]).all()
        assert torch.isfinite(reward).all()
    assert torch.isfinite(data(env).joint_pos.torch).all()


def test_observation_layout_is_the_committed_contract(make_reach_env):
    """Names, sizes and order of every observation group equal the file both runtimes are held to."""
    env = make_reach_env(num_envs=2)
    manager = env.observation_manager
    layout = {group: [[name, int(dim[0])] for name, dim in zip(manager.active_terms[group],
                                                                manager.group_obs_term_dim[group])]
              for group in ("policy", "critic")}
    assert layout == json.loads(LAYOUT_FILE.read_text())


def test_link_mass_randomization_scales_mass_and_inertia_per_link_and_env(make_reach_env):
    env = make_reach_env(num_envs=8, edit=only_events("link_masses"))
    robot = env.scene["robot"]
    ids, names = robot.find_bodies([link.name for link in LINKS], preserve_order=True)
    nominal = torch.tensor([link.mass for link in LINKS])
    nominal_inertia = torch.tensor([link.inertia_diag for link in LINKS])
    scale = data(env).body_mass.torch[:, ids] / nominal
    lo, hi = env.cfg.events.link_masses.params["mass_distribution_params"]
    assert (scale >= lo - 1e-5).all() and (scale <= hi + 1e-5).all() and scale.std(dim=0).min() > 0.05
    inertia = data(env).body_inertia.torch[:, ids][..., [0, 4, 8]].sort(dim=-1).values  # MuJoCo orders principal axes
    ratio = inertia / nominal_inertia.sort(dim=-1).values
    torch.testing.assert_close(ratio, scale[..., None].expand_as(ratio), rtol=2e-3, atol=1e-6)


def test_a_heavier_arm_sags_more_under_the_same_servo(make_reach_env):
    env = make_reach_env(num_envs=2, edit=raw_servo)
    robot = env.scene["robot"]
    ids, _ = robot.find_bodies([link.name for link in LINKS], preserve_order=True)
    env.reset()
    heavy = torch.tensor([[link.mass * 3.0 for link in LINKS]])
    heavy_inertia = torch.diag_embed(torch.tensor([[[3.0 * v for v in link.inertia_diag] for link in LINKS]]))
    robot.set_masses_index(masses=heavy, body_ids=ids, env_ids=torch.tensor([1]))
    robot.set_inertias_index(inertias=heavy_inertia.reshape(1, len(LINKS), 9), body_ids=ids, env_ids=torch.tensor([1]))
    hold(env, 60)
    sag = (data(env).joint_pos.torch[:, 1] - data(env).default_joint_pos.torch[:, 1]).abs()  # the shoulder
    assert sag[0] > 1e-3 and sag[1] > 2.0 * sag[0], sag


def test_servo_gain_randomization_draws_in_range_and_a_weak_servo_sags_more(make_reach_env):
    env = make_reach_env(num_envs=16, edit=only_events("servo_gains"))
    env.reset()
    kp, kv = data(env).joint_stiffness.torch[:, :ARM], data(env).joint_damping.torch[:, :ARM]
    kp0 = torch.tensor([j.kp for j in ARM_JOINTS])
    kv0 = torch.tensor([j.kv for j in ARM_JOINTS])
    params = env.cfg.events.servo_gains.params
    for value, nominal, key in ((kp, kp0, "stiffness_distribution_params"), (kv, kv0, "damping_distribution_params")):
        ratio = value / nominal
        assert (ratio >= params[key][0] - 1e-5).all() and (ratio <= params[key][1] + 1e-5).all()
        assert ratio.std() > 0.05
    weak = make_reach_env(num_envs=2, edit=raw_servo)
    weak.scene["robot"].write_joint_stiffness_to_sim_index(stiffness=torch.tensor([[kp0[1] * 0.4]]), joint_ids=[1],
                                                           env_ids=torch.tensor([1]))
    weak.reset()
    hold(weak, 60)
    sag = (data(weak).joint_pos.torch[:, 1] - data(weak).default_joint_pos.torch[:, 1]).abs()
    assert sag[1] > 2.0 * sag[0], sag


def test_joint_dynamics_randomization_draws_in_range_and_heavy_damping_slows_a_step(make_reach_env):
    env = make_reach_env(num_envs=16, edit=only_events("joint_dynamics"))
    env.reset()
    params = env.cfg.events.joint_dynamics.params
    friction = data(env).joint_friction_coeff.torch[:, :ARM]
    armature = data(env).joint_armature.torch[:, :ARM] / torch.tensor([j.armature for j in ARM_JOINTS])
    damping = data(env).joint_viscous_friction_coeff.torch[:, :ARM] / torch.tensor([j.damping for j in ARM_JOINTS])
    for value, key in ((friction, "friction_distribution_params"), (armature, "armature_distribution_params"),
                       (damping, "damping_distribution_params")):
        lo, hi = params[key]
        assert (value >= lo - 1e-5).all() and (value <= hi + 1e-5).all() and value.std() > 1e-3, key
    slow = make_reach_env(num_envs=2, edit=raw_servo)
    robot = slow.scene["robot"]
    robot.write_joint_armature_to_sim_index(armature=torch.tensor([[0.05]]), joint_ids=[0], env_ids=torch.tensor([1]))
    robot.write_joint_friction_coefficient_to_sim_index(joint_friction_coeff=torch.tensor([[0.2]]),
                                                        joint_viscous_friction_coeff=torch.tensor([[2.0]]),
                                                        joint_ids=[0], env_ids=torch.tensor([1]))
    slow.reset()
    step = torch.zeros(2, ARM)
    step[:, 0] = 0.4  # the base, which gravity does not load
    hold(slow, 3, step)
    moved = data(slow).joint_pos.torch[:, 0]
    assert moved[0] > 0.2 and moved[1] < 0.5 * moved[0], moved


def test_calibration_offset_moves_the_true_joint_but_not_the_servo_reading(make_reach_env):
    env = make_reach_env(num_envs=16, edit=only_events("calibration"))
    env.reset()
    term = env.action_manager.get_term("arm_action")
    lo, hi = env.cfg.events.calibration.params["offset_range"]
    assert (term.calibration_offset >= lo).all() and (term.calibration_offset <= hi).all()
    assert term.calibration_offset.std() > 1e-3
    def absolute(cfg):  # target = home + action: zero action asks every servo for home
        only_events()(cfg)
        cfg.actions.arm_action.mode, cfg.actions.arm_action.scale = "absolute", 1.0
        cfg.observations.policy.enable_corruption = False  # the readings themselves, not plus 5 mrad of noise

    two = make_reach_env(num_envs=2, edit=absolute)
    servos = two.action_manager.get_term("arm_action")
    servos.set_calibration_offset(torch.tensor([[0.05, 0, 0, 0, 0]]), torch.tensor([1]))
    two.reset()
    hold(two, 60)
    reading = servos.measured_joint_pos[:, 0] - servos.default_joint_pos[:, 0]
    true = data(two).joint_pos.torch[:, 0]
    assert reading.abs().max() < 0.01  # both servos say they hold the home target
    assert float(true[1] - true[0]) == pytest.approx(0.05, abs=0.005)
    obs = two.observation_manager.compute_group("policy")
    assert float((obs[1, 0] - obs[0, 0]).abs()) < 0.005  # the policy sees the reading, not the truth


def test_action_latency_delays_the_targets_by_whole_control_steps(make_reach_env):
    env = make_reach_env(num_envs=3, edit=only_events())
    env.reset()
    term = env.action_manager.get_term("arm_action")
    longest = term.cfg.max_latency_steps
    term.set_latency(torch.tensor([0, 1, longest]), torch.arange(3))
    applied, commanded = [], []
    for t in range(3 * (longest + 1)):  # past the end of the target history more than once
        env.step(torch.full((3, ARM), 0.02 * (-1) ** t * (t + 1)))
        applied.append(term.processed_actions.clone())
        commanded.append(term.commanded_targets.clone())
    for t in range(longest, len(applied)):
        torch.testing.assert_close(applied[t][0], commanded[t][0])
        torch.testing.assert_close(applied[t][1], commanded[t - 1][1])
        torch.testing.assert_close(applied[t][2], commanded[t - longest][2])
        assert not torch.equal(commanded[t][2], commanded[t - 1][2])  # each step commands something new
    randomized = make_reach_env(num_envs=32, edit=only_events("action_latency"))
    randomized.reset()
    lo, hi = randomized.cfg.events.action_latency.params["latency_range"]
    latency = randomized.action_manager.get_term("arm_action")._latency
    assert latency.min() >= lo and latency.max() <= hi and len(latency.unique()) > 1


@pytest.mark.parametrize("task", ["RoArm-Reach-v0", "RoArm-Lift-v0"])
def test_a_nominal_evaluation_runs_the_arms_nominal_latency_not_none(make_task_env, task):
    """Nominal drops the randomization, not the arm's delay: with none, lift's policy (trained with 3 to 8 steps)
    closed its jaws before reaching the cube (0.22 success against 0.97)."""
    from roarm_lab.assets.physics import SERVO_LATENCY_STEPS

    env = make_task_env(4, task=task, edit=lambda cfg: cfg.evaluation_mode(randomize=False))
    env.reset()
    assert SERVO_LATENCY_STEPS == 6  # the arm's 0.2 s at 30 Hz (ROARM_M3.md)
    for name in env.action_manager.active_terms:
        term = env.action_manager.get_term(name)
        assert term._latency.tolist() == [SERVO_LATENCY_STEPS] * 4, name
    arm = env.action_manager.get_term("arm_action")
    nudge = torch.zeros(4, env.action_manager.total_action_dim)
    nudge[:, 0] = 1.0  # one step of the base's target, then nothing
    lag = []
    for t in range(SERVO_LATENCY_STEPS + 1):
        env.step(nudge if t == 0 else torch.zeros_like(nudge))
        lag.append((arm.commanded_targets - arm.processed_actions)[:, 0].abs().max().item())
    assert min(lag[:SERVO_LATENCY_STEPS]) > 0.04 and lag[-1] < 1e-6, lag  # sent six steps later


def test_a_latency_longer_than_the_history_is_refused(make_reach_env):
    def too_long(cfg):
        cfg.actions.arm_action.latency_steps = cfg.actions.arm_action.max_latency_steps + 1

    with pytest.raises(ValueError, match="latency_steps=9 must lie in 0..max_latency_steps"):
        make_reach_env(num_envs=1, edit=too_long)


def test_servo_speed_randomization_draws_in_range_and_a_slow_servo_lags(make_reach_env):
    env = make_reach_env(num_envs=32, edit=only_events("servo_speed"))
    env.reset()
    term = env.action_manager.get_term("arm_action")
    lo, hi = env.cfg.events.servo_speed.params["speed_range"]
    assert term._speed.min() >= lo and term._speed.max() <= hi and term._speed.std() > 0.1
    two = make_reach_env(num_envs=2, edit=only_events())
    servos = two.action_manager.get_term("arm_action")
    two.reset()
    servos.set_servo_speed(torch.tensor([[0.5] * ARM, [3.0] * ARM]), torch.tensor([0, 1]))
    servos.set_latency(torch.zeros(2, dtype=torch.long), torch.tensor([0, 1]))
    start = data(two).joint_pos.torch[:, 0].clone()
    action = torch.zeros(2, ARM)
    action[:, 0] = 2.0  # the base target runs ahead at 0.1 rad per step (3 rad/s)
    hold(two, 15, action)
    moved = data(two).joint_pos.torch[:, 0] - start
    assert float(moved[0]) == pytest.approx(0.5 * 15 * two.step_dt, abs=0.05)  # 0.25 rad at 0.5 rad/s
    assert moved[1] > 3 * moved[0]


def test_reset_places_the_arm_in_the_start_box(make_reach_env):
    env = make_reach_env(num_envs=64, edit=only_events("reset_robot_joints"))
    env.reset()
    lo, hi = env.cfg.events.reset_robot_joints.params["position_range"]
    offset = data(env).joint_pos.torch[:, :ARM] - data(env).default_joint_pos.torch[:, :ARM]
    limits = data(env).soft_joint_pos_limits.torch[0, :ARM]
    q = data(env).joint_pos.torch[:, :ARM]
    assert (offset >= lo - 1e-4).all() and (offset <= hi + 1e-4).all() and offset.std() > 0.1
    assert (q >= limits[:, 0] - 1e-4).all() and (q <= limits[:, 1] + 1e-4).all()
    # the servo model starts from the reading, so zero action holds the start pose
    term = env.action_manager.get_term("arm_action")
    torch.testing.assert_close(term.commanded_targets, term.measured_joint_pos, atol=1e-5, rtol=0)


def test_episodes_log_success_error_and_per_term_reward_sums(make_reach_env):
    """Steer every env to its own target with the joints that produced it: the logged success rate is 1."""
    from roarm_lab.assets.kinematics import tcp_positions_base

    def short_absolute(cfg):
        raw_servo(cfg)
        cfg.episode_length_s = 2.0
        cfg.commands.ee_target.resampling_time_range = (1e9, 1e9)

    env = make_reach_env(num_envs=4, edit=short_absolute)
    env.reset()
    command = env.command_manager.get_term("ee_target")
    q = torch.tensor([[0.4, 0.3, 1.2, 0.2, 0.0], [-0.6, 0.1, 1.8, -0.3, 0.0], [1.2, -0.2, 1.0, 0.5, 0.0],
                      [0.0, 0.5, 1.5, 0.0, 0.0]])
    command.pos_command_b[:] = torch.as_tensor(tcp_positions_base(q.numpy()), dtype=torch.float32)
    action = q - env.action_manager.get_term("arm_action").default_joint_pos  # absolute: home + action
    log = {}
    for _ in range(env.max_episode_length):
        _, _, _, truncated, extras = env.step(action)
        log.update(extras.get("log", {}))
    assert truncated.all()
    assert float(log["Metrics/ee_target/success_rate"]) == 1.0
    assert float(log["Metrics/ee_target/position_error"]) < 0.01
    for name in env.reward_manager.active_terms:
        assert f"Episode_Reward/{name}" in log
    assert float(log["Episode_Reward/tracking"]) < 0.0 and float(log["Episode_Reward/goal"]) > 0.0
    assert "Episode_Termination/time_out" in log


def reward_term(env, name: str):
    """The callable of a reward term: Isaac Lab swaps a class term's ``func`` for its instance, the embedded
    runtime keeps the instance beside the config."""
    func = env.reward_manager.get_term_cfg(name).func
    if not isinstance(func, type):
        return func
    return next(fn for term, _, fn in env.reward_manager._terms if term == name)


def test_the_workspace_box_penalty_is_how_far_each_joint_lies_outside_the_box_the_targets_come_from(make_reach_env):
    env = make_reach_env(num_envs=3, edit=only_events())
    env.reset()
    box = env.cfg.commands.ee_target.joint_box
    assert box["wrist"][0] == -0.8 and box["elbow"][1] == 2.6 and box["base"][1] == 2.2  # the figures below
    term, cfg = reward_term(env, "workspace_box"), env.reward_manager.get_term_cfg("workspace_box")
    # env 0: inside the box; env 1: wrist at its hard limit (0.2 rad out), elbow 0.1 rad out; env 2: the base
    # 0.3 rad out and the roll turned, which this term leaves to roll_home
    q = data(env).default_joint_pos.torch[:, :ARM].clone()
    q[1, 3], q[1, 2] = -1.0, 2.7
    q[2, 0], q[2, 4] = 2.5, 1.0
    env.scene["robot"].write_joint_position_to_sim_index(position=q, joint_ids=list(range(ARM)), env_ids=torch.arange(3))
    value = term(env, **cfg.params)
    torch.testing.assert_close(value, torch.tensor([0.0, 0.3, 0.3]), atol=1e-5, rtol=0)
    assert cfg.weight < 0.0


def test_nominal_evaluation_runs_the_tables_arm_with_no_randomization(make_reach_env):
    """``evaluation_mode(randomize=False)`` finds the randomization terms in the config itself and drops them."""
    env = make_reach_env(num_envs=4, edit=lambda cfg: cfg.evaluation_mode(randomize=False))
    env.reset()
    robot = env.scene["robot"]
    ids, _ = robot.find_bodies([link.name for link in LINKS], preserve_order=True)
    torch.testing.assert_close(data(env).body_mass.torch[:, ids], torch.tensor([link.mass for link in LINKS]).expand(4, -1))
    torch.testing.assert_close(data(env).joint_stiffness.torch[:, :ARM], torch.tensor([j.kp for j in ARM_JOINTS]).expand(4, -1))
    term = env.action_manager.get_term("arm_action")
    assert not term.calibration_offset.any()
    assert not env.cfg.observations.policy.enable_corruption and env.cfg.compute_final_obs
    assert env.command_manager.get_term("ee_target").cfg.held_out
    randomized = make_reach_env(num_envs=4, edit=lambda cfg: cfg.evaluation_mode(randomize=True))
    randomized.reset()
    assert (data(randomized).body_mass.torch[:, ids] != torch.tensor([link.mass for link in LINKS])).any()
