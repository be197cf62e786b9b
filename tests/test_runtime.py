"""The embedded runtime on the real MuJoCo engine: stepping, resets, NaN recovery, randomization effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roarm_lab.assets.joint_table import ARM_JOINTS
from roarm_lab.assets.links import LINKS


def test_step_returns_isaac_lab_shapes_and_logs_episode_sums(make_reach_env):
    env = make_reach_env(num_envs=6)
    obs, _ = env.reset()
    assert obs["policy"].shape == (6, 29) and obs["critic"].shape == (6, 29)
    assert env.step_dt == pytest.approx(1 / 30) and env.max_episode_length == 360
    zeros = torch.zeros(6, 5)
    logs = {}
    for _ in range(env.max_episode_length):
        obs, rew, terminated, truncated, extras = env.step(zeros)
        logs.update(extras["log"])
    assert truncated.all() and not terminated.any()
    for key in ("Episode_Reward/tracking", "Episode_Reward/goal", "Metrics/ee_target/success_rate",
                "Episode_Termination/time_out"):
        assert key in logs
    assert logs["Episode_Reward/tracking"] < 0.0
    assert (env.episode_length_buf == 0).all()


def test_nan_in_the_simulation_resets_only_that_env_and_is_counted(make_reach_env):
    env = make_reach_env(num_envs=4)
    env.reset()
    for _ in range(5):
        env.step(torch.zeros(4, 5))
    before = env.episode_length_buf.clone()
    env.sim.qvel[2] = np.nan  # corrupt one simulation in the engine's own state
    obs, rew, terminated, truncated, extras = env.step(torch.zeros(4, 5))
    assert terminated[2] and not terminated[[0, 1, 3]].any()
    assert extras["log"]["Episode_Termination/sim_diverged"] == 1 and env.sim_diverged_count == 1
    assert torch.isfinite(obs["policy"]).all() and torch.isfinite(rew).all()
    assert env.episode_length_buf[2] == 0 and (env.episode_length_buf[[0, 1, 3]] == before[[0, 1, 3]] + 1).all()


def test_the_divergence_term_flags_non_finite_and_too_fast_joints_only(make_reach_env):
    from roarm_lab.mdp.terminations import joint_velocity_diverged

    env = make_reach_env(num_envs=6)
    env.reset()
    cfg = env.cfg.terminations.diverged
    limit = cfg.params["max_velocity"]
    vel = env.scene["robot"].data.joint_vel.torch
    vel.zero_()
    vel[1, 0], vel[2, 1], vel[3, 2], vel[4, 3], vel[5, 4] = np.nan, np.inf, -np.inf, 1.01 * limit, -0.99 * limit
    flagged = joint_velocity_diverged(env, **cfg.params)
    assert flagged.tolist() == [False, True, True, True, True, False]


def test_mass_writes_reach_the_engine_and_inertia_is_separate(make_reach_env):
    """Isaac Lab 3's semantics: set_masses_index leaves the inertia; set_inertias_index sets it."""
    env = make_reach_env(num_envs=2, edit=lambda c: setattr(c, "events", None))
    robot = env.scene["robot"]
    nominal_inertia = env.sim._inertia[1, 3].copy()
    robot.set_masses_index(masses=torch.tensor([[0.5]]), body_ids=[2], env_ids=torch.tensor([1]))
    assert env.sim._mass[1, 3] == pytest.approx(0.5) and env.sim._mass[0, 3] == pytest.approx(LINKS[2].mass)
    np.testing.assert_allclose(env.sim._inertia[1, 3], nominal_inertia)
    robot.set_inertias_index(inertias=torch.diag(torch.tensor([1e-3, 2e-3, 3e-3])).reshape(1, 1, 9), body_ids=[2],
                             env_ids=torch.tensor([1]))
    np.testing.assert_allclose(env.sim._inertia[1, 3], [1e-3, 2e-3, 3e-3], rtol=1e-6)
    with pytest.raises(ValueError, match="off-diagonal"):
        robot.set_inertias_index(inertias=torch.ones(1, 1, 9), body_ids=[2], env_ids=torch.tensor([1]))
    with pytest.raises(ValueError, match="hand_tcp"):
        robot.set_masses_index(masses=torch.tensor([[0.5]]), body_ids=[robot.find_bodies("hand_tcp")[0][0]])


def no_events_no_latency(cfg):
    """No randomization, and commands applied the step they are sent (a task's nominal arm lags 0.2 s)."""
    cfg.events = None
    cfg.actions.arm_action.latency_steps = 0


def test_relative_actions_integrate_and_zero_action_holds(make_reach_env):
    env = make_reach_env(num_envs=2, edit=no_events_no_latency)
    env.reset()
    target0 = env.scene["robot"].actuators.target_command.position.torch[:, :5].clone()
    action = torch.zeros(2, 5)
    action[0, 0] = 1.0
    for _ in range(4):
        env.step(action)
    target = env.scene["robot"].actuators.target_command.position.torch[:, :5]
    assert float(target[0, 0]) == pytest.approx(float(target0[0, 0]) + 4 * 0.05, abs=1e-6)
    torch.testing.assert_close(target[1], target0[1])


def test_targets_are_step_limited_and_boxed_and_the_servo_slews_toward_them(make_reach_env):
    env = make_reach_env(num_envs=2, edit=no_events_no_latency)
    env.reset()
    term = env.action_manager.get_term("arm_action")
    cfg = term.cfg
    upper = torch.tensor([j.upper for j in ARM_JOINTS])
    targets, setpoints = [term.processed_actions.clone()], [env.scene["robot"].actuators.target_command.position.torch[:, :5].clone()]
    for _ in range(60):
        env.step(torch.full((2, 5), 100.0))  # 5 rad per step asked for
        targets.append(term.processed_actions.clone())
        setpoints.append(env.scene["robot"].actuators.target_command.position.torch[:, :5].clone())
    targets, setpoints = torch.stack(targets), torch.stack(setpoints)
    assert (targets.diff(dim=0).abs() <= cfg.max_step + 1e-6).all()
    assert torch.allclose(targets[-1], upper.expand(2, 5)) and (targets <= upper + 1e-6).all()
    # the servo's own setpoint trails the target at servo_speed and stops within the deadband
    assert (setpoints.diff(dim=0).abs() <= cfg.servo_speed * env.step_dt + 1e-5).all()
    assert (setpoints.diff(dim=0).abs().amax(dim=(1, 2)) > 0.9 * cfg.servo_speed * env.step_dt)[:10].all()
    assert ((targets[-1] - setpoints[-1]).abs() <= cfg.servo_deadband + 1e-6).all()


def test_exported_action_convention_reproduces_the_simulators_targets(make_reach_env):
    """The gateway and the bridge convert actions with ActionConvention(policy.json): same targets as the sim."""
    from roarm_lab.policy import ActionConvention, ClientTargets
    from roarm_lab.policy.spec import build_spec

    env = make_reach_env(num_envs=1, edit=lambda c: (setattr(c, "events", None),
                                                     setattr(c.observations.policy, "enable_corruption", False)))
    obs, _ = env.reset()
    convention = ActionConvention(build_spec(env, "RoArm-Reach-v0"))
    state = ClientTargets()
    term = env.action_manager.get_term("arm_action")
    gen = torch.Generator().manual_seed(0)
    for step in range(40):
        action = torch.randn(1, 5, generator=gen) * 3.0  # often past max_step, sometimes into the box
        target, _ = convention.to_targets(action[0].numpy(), obs["policy"][0].numpy(), state)
        obs, *_ = env.step(action)
        # what the bridge sends; the simulated servo gets it the task's latency later
        np.testing.assert_allclose(target, term.commanded_targets[0].numpy(), atol=1e-5, err_msg=f"step {step}")


def test_finite_difference_velocity_matches_position_change(make_reach_env):
    env = make_reach_env(num_envs=2, edit=lambda c: (setattr(c, "events", None),
                                                     setattr(c.observations.policy, "enable_corruption", False)))
    obs, _ = env.reset()
    q_prev = env.scene["robot"].data.joint_pos.torch[:, :5].clone()
    obs, *_ = env.step(torch.full((2, 5), 0.5))
    q = env.scene["robot"].data.joint_pos.torch[:, :5]
    layout = {"joint_vel": slice(5, 10)}
    torch.testing.assert_close(obs["policy"][:, layout["joint_vel"]], (q - q_prev) / env.step_dt)


def test_command_targets_are_reachable_above_the_table_and_held_out_differs(make_reach_env):
    from roarm_lab.mdp.commands import ReachableTargetCommandCfg, reachable_target_bank

    box = {"roll": (0.0, 0.0)}
    train = reachable_target_bank(box, 500, seed=0, min_height_above_table_m=0.04, min_radius_m=0.12)
    held = reachable_target_bank(box, 500, seed=ReachableTargetCommandCfg().held_out_seed_offset,
                                 min_height_above_table_m=0.04, min_radius_m=0.12)
    assert (train[:, 2] + 0.0701 >= 0.04).all() and (np.hypot(train[:, 0], train[:, 1]) >= 0.12).all()
    shoulder = np.array([0.0, 0.0, 0.051959])
    chain = 0.2388 + 0.1446 + 0.0557 + 0.1154  # upper arm + forearm + wrist offset + hand, from the URDF origins
    assert np.linalg.norm(train - shoulder, axis=1).max() <= chain
    dists = np.linalg.norm(held[:, None] - train[None], axis=-1).min(axis=1)
    assert (dists > 1e-6).all()
    with pytest.raises(ValueError, match="inside the safe box"):
        reachable_target_bank({"shoulder": (-2.0, 0.0)}, 10, 0, 0.0, 0.0)


def test_a_bank_facing_the_base_range_keeps_only_targets_in_front_of_the_turned_base():
    """The shoulder leaning back puts 3 % of a +-2.2 rad base box's points behind the base; facing_base_range drops
    exactly those, and every kept target is one the arm reaches facing it with the base inside the box."""
    from roarm_lab.assets.kinematics import tcp_positions_base
    from roarm_lab.mdp.commands import reachable_target_bank

    box = {"base": (-2.2, 2.2), "shoulder": (-1.0, 1.0), "elbow": (0.0, 2.6), "wrist": (-0.8, 1.2), "roll": (0.0, 0.0)}
    every = reachable_target_bank(box, 4000, 0, 0.04, 0.15)
    facing = reachable_target_bank(box, 4000, 0, 0.04, 0.15, facing_base_range=True)
    behind = np.abs(np.arctan2(every[:, 1], every[:, 0])) > 2.2
    assert 0.01 < behind.mean() < 0.06
    assert (np.abs(np.arctan2(facing[:, 1], facing[:, 0])) <= 2.2 + 1e-6).all() and len(facing) == 4000
    # the arm's vertical plane holds the hand: base turned to a kept target's azimuth, the rest of some joint
    # vector of the box reaches it (within the 2 mm the search below resolves)
    rng = np.random.default_rng(1)
    q = rng.uniform([0, -1.0, 0.0, -0.8, 0.0], [0, 1.0, 2.6, 1.2, 0.0], size=(60000, 5))
    plane = tcp_positions_base(q)
    in_front = plane[:, 0] > 0
    r_z = np.stack([plane[in_front, 0], plane[in_front, 2]], axis=1)
    sample = facing[rng.choice(len(facing), 200, replace=False)]
    want = np.stack([np.hypot(sample[:, 0], sample[:, 1]), sample[:, 2]], axis=1)
    nearest = np.sqrt(((want[:, None] - r_z[None]) ** 2).sum(-1)).min(axis=1)
    assert nearest.max() < 0.01


def test_workspace_regions_split_azimuth_into_sectors_and_height_into_equal_bands():
    from roarm_lab.mdp.commands import workspace_regions

    bank = np.array([[1.0, 0.0, 0.1], [0.0, 1.0, 0.2], [-1.0, 1e-6, 0.3], [-1.0, -1e-6, 0.4],
                     [0.0, -1.0, 0.5], [1.0, -1e-6, 0.6]])
    regions = workspace_regions(bank, azimuth_bins=4, height_bins=2)
    sector, band = regions // 2, regions % 2
    # 90 deg sectors from -180: 0 deg in 2, +90 in 3, just under +180 in 3, just past -180 in 0,
    # -90 and just under 0 deg in 1
    assert sector.tolist() == [2, 3, 3, 0, 1, 1]
    assert band.tolist() == [0, 0, 0, 1, 1, 1]  # split at the median height


def test_failure_weighted_sampling_draws_where_the_policy_fails_and_evaluation_stays_uniform(make_reach_env):
    def weighted(fraction):
        def edit(cfg):
            cfg.commands.ee_target.failure_weighted_fraction = fraction
        return edit

    env = make_reach_env(num_envs=64, edit=weighted(1.0))
    cmd = env.command_manager.get_term("ee_target")
    populated = torch.nonzero(cmd._region_count > 0).flatten()
    hard = int(populated[0])
    cmd._region_stats[:] = 1000.0
    cmd._region_stats[1] = 0.0
    cmd._region_stats[1, hard] = 800.0  # only this region fails
    drawn = cmd._draw(500)
    assert (cmd._region_of[drawn] == hard).all()
    # scoring: segments ending far from their targets raise their region's failure rate
    env.reset()
    cmd._region_stats[:] = 1.0
    cmd._target_region[:] = hard
    cmd.command_counter[:] = 1
    cmd.metrics["position_error"][:] = 0.5
    cmd._score_segments(torch.arange(64))
    rates = cmd.region_failure_rate()
    assert float(rates[hard]) == pytest.approx(65 / 65) and float(rates[hard]) >= float(rates.max())
    cmd.metrics["position_error"][:] = 0.0
    cmd._score_segments(torch.arange(64))
    assert float(cmd.region_failure_rate()[hard]) == pytest.approx(65 / 129)

    # held out: the sampler is off and draws consume the random stream exactly as uniform draws do
    def held_out(cfg):
        weighted(1.0)(cfg)
        cfg.commands.ee_target.held_out = True
    env = make_reach_env(num_envs=8, edit=held_out)
    cmd = env.command_manager.get_term("ee_target")
    torch.manual_seed(3)
    drawn = cmd._draw(100)
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.randint(0, len(cmd.bank), (100,)))
    with pytest.raises(ValueError, match="failure_weighted_fraction"):
        make_reach_env(num_envs=8, edit=weighted(1.5))

    def no_sectors(cfg):
        cfg.commands.ee_target.regions = (0, 3)
    with pytest.raises(ValueError, match="azimuth sectors"):
        make_reach_env(num_envs=8, edit=no_sectors)


def test_partial_reset_leaves_other_envs_untouched(make_reach_env):
    def only_joint_reset(cfg):
        cfg.events = type(cfg.events)(**{name: None for name in vars(cfg.events) if name != "reset_robot_joints"})
        cfg.events.reset_robot_joints.params["position_range"] = (0.0, 0.0)

    env = make_reach_env(num_envs=3, edit=only_joint_reset)
    env.reset()
    for _ in range(10):
        env.step(torch.full((3, 5), 0.3))
    q_before = env.scene["robot"].data.joint_pos.torch.clone()
    env._reset_idx(torch.tensor([1]))
    q_after = env.scene["robot"].data.joint_pos.torch
    torch.testing.assert_close(q_after[[0, 2]], q_before[[0, 2]])
    torch.testing.assert_close(q_after[1, :5], env.scene["robot"].data.default_joint_pos.torch[1, :5])  # arm joints


def test_missing_config_field_is_reported_by_name(make_reach_env):
    from dataclasses import MISSING

    with pytest.raises(ValueError, match="episode_length_s"):
        make_reach_env(num_envs=2, edit=lambda c: setattr(c, "episode_length_s", MISSING))


def test_a_velocity_write_leaves_the_kinematics_and_a_position_write_recomputes_them(make_reach_env):
    """A reset writes positions, then velocities: only the first needs the engine's kinematics pass."""
    env = make_reach_env(num_envs=3)
    env.reset()
    robot, sim = env.scene["robot"], env.sim
    passes: list = []
    engine_forward = sim.forward
    sim.forward = lambda env_ids=None: (passes.append(env_ids), engine_forward(env_ids))[1]
    frames = robot.data.body_pos_w.torch.clone()
    robot.write_joint_velocity_to_sim_index(velocity=torch.full((1, 5), 0.7), joint_ids=list(range(5)),
                                            env_ids=torch.tensor([1]))
    assert passes == []  # no kinematics pass for a velocity write
    assert np.allclose(sim.qvel[1, :5], 0.7) and np.allclose(sim.qvel[[0, 2]], 0.0)
    torch.testing.assert_close(robot.data.body_pos_w.torch, frames)
    robot.write_joint_position_to_sim_index(position=torch.tensor([[0.5, 0.3]]), joint_ids=[0, 1],
                                            env_ids=torch.tensor([2]))
    assert len(passes) == 1 and list(passes[0]) == [2]  # one pass, for the written simulation only
    sim.forward = engine_forward
    moved = robot.data.body_pos_w.torch
    torch.testing.assert_close(moved[[0, 1]], frames[[0, 1]])
    assert not torch.allclose(moved[2], frames[2])
    sim.forward()  # the engine's own kinematics of every simulation agree with what the write stored
    torch.testing.assert_close(moved, torch.from_numpy(sim.frame_positions()).float())


def test_a_contiguous_joint_subset_resolves_to_a_slice_that_reads_the_same_values(make_reach_env):
    from roarm_lab.isaaclab_api import SceneEntityCfg
    from roarm_lab.mdp.observations import joint_pos_rel

    env = make_reach_env(num_envs=4)
    env.reset()
    env.step(torch.full((4, 5), 0.5))
    names = env.scene["robot"].joint_names
    arm = SceneEntityCfg("robot", joint_names=names[1:4], preserve_order=True)
    scattered = SceneEntityCfg("robot", joint_names=[names[3], names[1]], preserve_order=True)
    every = SceneEntityCfg("robot", joint_names=".*")
    for cfg in (arm, scattered, every):
        cfg.resolve(env.scene)
    assert arm.joint_ids == slice(1, 4) and scattered.joint_ids == [3, 1] and every.joint_ids == slice(None)
    q = env.scene["robot"].data.joint_pos.torch - env.scene["robot"].data.default_joint_pos.torch
    torch.testing.assert_close(joint_pos_rel(env, arm), q[:, [1, 2, 3]])
    torch.testing.assert_close(joint_pos_rel(env, scattered), q[:, [3, 1]])
    torch.testing.assert_close(joint_pos_rel(env, every), q)


def test_the_step_reward_is_the_weighted_sum_of_the_terms_and_the_episode_sums_add_up(make_reach_env):
    env = make_reach_env(num_envs=5)
    env.reset()
    manager = env.reward_manager
    total = torch.zeros(5)
    for _ in range(4):
        _, reward, *_ = env.step(torch.full((5, 5), 0.2))
        expected = sum(cfg.weight * env.step_dt * fn(env, **cfg.params) for _, cfg, fn in manager._terms)
        torch.testing.assert_close(reward, expected)
        total += reward
    torch.testing.assert_close(sum(manager._episode_sums.values()), total)
    logged = manager.reset(torch.tensor([0, 3]))
    assert set(logged) == {f"Episode_Reward/{name}" for name in manager.active_terms}
    assert sum(logged.values()) == pytest.approx(float(total[[0, 3]].mean()) / env.max_episode_length_s, rel=1e-5)
    assert float(manager._episode_sums["tracking"][[0, 3]].abs().sum()) == 0.0
    assert float(manager._episode_sums["tracking"][[1, 2, 4]].abs().sum()) > 0.0


def test_the_workspace_box_term_refuses_a_joint_the_box_does_not_cover(make_reach_env):
    """The gripper is not in the targets' joint box: naming it is a config error at build time, not a zero penalty."""
    from roarm_lab.assets.joint_table import GRIPPER_JOINT
    from roarm_lab.isaaclab_api import SceneEntityCfg

    def with_gripper(cfg):
        cfg.rewards.workspace_box.params["asset_cfg"] = SceneEntityCfg("robot", joint_names=[GRIPPER_JOINT.name])

    with pytest.raises(ValueError, match="not arm joints of the workspace box"):
        make_reach_env(num_envs=2, edit=with_gripper)
