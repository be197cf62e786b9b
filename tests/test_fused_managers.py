"""The fused reward, termination and observation managers against the readable term functions, term by term.

Two kinds of states: random values written into every buffer the terms read (the hand around the cube, joints
past their limits, gripper commands of either sign, a NaN velocity), so each branch of each term is exercised,
and the states of a rollout with episodes ending. Agreement is to float32 rounding: the fused sums of squares
add in another order than torch's reductions (a few ulp).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roarm_lab.embedded.managers.fused import FusedRows, scale_rows
from roarm_lab.mdp import rewards
from roarm_lab.mdp.fused import FUSED_FORMS, fused_form
from roarm_lab.registry import make_env
from roarm_lab.rl.run_setup import load_task_configs

TASKS = ["RoArm-Reach-v0", "RoArm-Lift-v0"]
RTOL, ATOL = 1e-5, 1e-6


def _env(task: str, num_envs: int = 64, overrides: list[str] | None = None):
    cfg, _, _ = load_task_configs(task, overrides or [])
    cfg.scene.num_envs = num_envs
    env = make_env(task, cfg)
    env.reset()
    return env


def _fused_rows(env, manager) -> torch.Tensor:
    """Each term's fused value, unweighted (rewards) or raw (terminations), as a (terms, envs) tensor."""
    if manager is env.reward_manager:
        manager._fused(manager._step_rows, np.ones(len(manager._terms), dtype=np.float32))
        return manager._step_values.clone()
    manager._fused(*manager._fused_args)
    return torch.stack([manager._term_dones[name] for name, _, _ in manager._terms])


def mismatches(env, manager) -> list[str]:
    """The terms whose fused value differs from the readable function's at the env's current state."""
    fused = _fused_rows(env, manager)
    bad = []
    for row, (name, cfg, fn) in enumerate(manager._terms):
        reference = fn(env, **cfg.params).to(fused.dtype)
        if not torch.allclose(fused[row].float(), reference.float(), rtol=RTOL, atol=ATOL, equal_nan=True):
            bad.append(name)
    return bad


def observation_mismatches(env, seed: int) -> list[str]:
    """The observation terms (``group/term``) whose fused columns differ from the readable group's, both computed
    at the env's current state from the same noise seed."""
    manager = env.observation_manager
    bad = []
    for group, (_, terms) in manager._groups.items():
        torch.manual_seed(seed)
        fused = manager.compute_group(group)
        assert manager._fused[group] is not None
        saved, manager._fused[group] = manager._fused[group], None  # None: the readable path
        try:
            torch.manual_seed(seed)
            readable = manager.compute_group(group)
        finally:
            manager._fused[group] = saved
        col = 0
        for (name, _, _), dim in zip(terms, manager.group_obs_term_dim[group]):
            if not torch.allclose(fused[:, col:col + dim[0]], readable[:, col:col + dim[0]], rtol=RTOL, atol=ATOL,
                                  equal_nan=True):
                bad.append(f"{group}/{name}")
            col += dim[0]
    return bad


def scramble(env, gen: torch.Generator) -> None:
    """Random values in the buffers the terms read, spread so every branch is taken somewhere."""
    n = env.num_envs
    robot = env.scene["robot"]
    data = robot.data

    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    low, high = data.soft_joint_pos_limits.torch[..., 0], data.soft_joint_pos_limits.torch[..., 1]
    span = high - low
    data.joint_pos.torch.copy_(low - 0.2 * span + 1.4 * span * rand(n, robot.num_joints))
    data.joint_vel.torch.copy_(80.0 * (rand(n, robot.num_joints) - 0.5))
    data.joint_vel.torch[0, 0] = float("nan")
    data.body_pos_w.torch.copy_(0.4 * (rand(*data.body_pos_w.torch.shape) - 0.5) + torch.tensor([0.2, 0.0, 0.1]))
    for term_name in env.command_manager.active_terms:
        command = env.command_manager.get_command(term_name)
        command.copy_(0.3 * rand(*command.shape) + torch.tensor([0.1, -0.15, 0.0]))
        body = getattr(env.command_manager.get_term(term_name), "body_idx", None)
        if body is not None:  # a quarter of the targets within 1.5 cm of the hand
            hand_b = data.body_pos_w.torch[: n // 4, body] - data.root_pos_w.torch[: n // 4]
            command[: n // 4, :3] = hand_b + 0.03 * (rand(n // 4, 3) - 0.5)
    env.action_manager.action.copy_(2 * rand(n, env.action_manager.total_action_dim) - 1)
    env.action_manager.prev_action.copy_(2 * rand(n, env.action_manager.total_action_dim) - 1)
    for term_name in env.action_manager.active_terms:
        term = env.action_manager.get_term(term_name)
        term.calibration_offset.copy_(0.02 * (rand(*term.calibration_offset.shape) - 0.5))
        term.raw_actions.copy_(2 * rand(*term.raw_actions.shape) - 1)
        term._history.copy_(rand(*term._history.shape) - 0.5)
        term._head_slot[0] = int(torch.randint(0, term._history.shape[1], (1,), generator=gen))
    for obj in env.scene.rigid_objects.values():
        hand = data.body_pos_w.torch[:, robot.find_bodies(".*")[0][-1]]
        near = hand + 0.06 * (rand(n, 3) - 0.5)  # around a hand frame: held and not
        near[:, 2] = 0.15 * rand(n) - 0.02
        near[:4] = torch.tensor([[0.5, 0.0, 0.02], [0.0, 0.5, 0.02], [0.1, 0.1, -0.1], [0.1, 0.0, float("nan")]])
        obj.data.root_pos_w.torch.copy_(near)
    env.episode_length_buf = torch.randint(0, int(env.max_episode_length) + 2, (n,), generator=gen)


@pytest.mark.parametrize("task", TASKS)
def test_every_term_of_the_task_has_a_fused_form_and_the_managers_use_them(task):
    env = _env(task, 16)
    for manager in (env.reward_manager, env.termination_manager):
        assert [name for name, _, fn in manager._terms if fused_form(fn) is None] == []
        assert manager._fused is not None
    observations = env.observation_manager
    assert [name for _, terms in observations._groups.values() for name, _, fn in terms if fused_form(fn) is None] == []
    assert all(observations._fused[group] is not None for group in observations._groups)
    assert env.action_manager._fused is not None


@pytest.mark.parametrize("task", TASKS)
def test_fused_terms_equal_the_readable_ones_on_scrambled_states(task):
    env = _env(task)
    gen = torch.Generator().manual_seed(7)
    seen: dict[str, set] = {}
    for i in range(20):
        scramble(env, gen)
        env.common_step_counter += i % 2  # the velocity terms' previous reading advances on odd rounds
        assert observation_mismatches(env, seed=i) == []
        for manager in (env.reward_manager, env.termination_manager):
            assert mismatches(env, manager) == []
            for row, (name, _, _) in zip(_fused_rows(env, manager), manager._terms):
                values = row.float().numpy()
                seen.setdefault(name, set()).update(np.unique(values[np.isfinite(values)]).round(6).tolist())
    # every term took more than one value: no comparison above was of constants
    assert {name for name, values in seen.items() if len(values) < 2} == set()


@pytest.mark.parametrize("task", TASKS)
def test_fused_terms_equal_the_readable_ones_through_a_rollout_with_resets(task):
    env = _env(task)
    env.episode_length_buf = torch.randint(0, int(env.max_episode_length), (env.num_envs,))
    resets = 0
    for _ in range(60):
        env.step(torch.randn(env.num_envs, env.action_manager.total_action_dim))
        resets += int(env.reset_buf.sum())
        for manager in (env.reward_manager, env.termination_manager):
            assert mismatches(env, manager) == []
        assert observation_mismatches(env, seed=len(str(resets))) == []
    assert resets > 0  # episodes ended, through the buffer the runner reassigns


@pytest.mark.parametrize("task", TASKS)
def test_a_fused_and_a_readable_environment_step_alike(task):
    """The whole step: rewards (weighted, curriculum included), dones, episode logs, from the same seed."""
    fused = _env(task, 32, ["env.seed=3"])
    readable = _env(task, 32, ["env.seed=3", "env.sim.physics.fused_managers=false"])
    assert fused.reward_manager._fused is not None and readable.reward_manager._fused is None
    assert readable.termination_manager._fused is None
    assert all(readable.observation_manager._fused[g] is None for g in readable.observation_manager._groups)
    start = torch.randint(0, int(fused.max_episode_length), (32,), generator=torch.Generator().manual_seed(1))
    fused.episode_length_buf = readable.episode_length_buf = start
    actions = torch.randn(80, 32, fused.action_manager.total_action_dim, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(5)
    fused_out = [fused.step(a) for a in actions]
    torch.manual_seed(5)
    readable_out = [readable.step(a) for a in actions]
    for (obs_f, rew_f, term_f, to_f, ext_f), (obs_r, rew_r, term_r, to_r, ext_r) in zip(fused_out, readable_out):
        torch.testing.assert_close(rew_f, rew_r, rtol=RTOL, atol=ATOL)
        assert torch.equal(term_f, term_r) and torch.equal(to_f, to_r)
        for group in obs_r:
            torch.testing.assert_close(obs_f[group], obs_r[group], rtol=RTOL, atol=ATOL)
    assert sum(int(o[2].sum() + o[3].sum()) for o in fused_out) > 0
    for key, value in readable.extras["log"].items():
        assert float(fused.extras["log"][key]) == pytest.approx(float(value), rel=1e-5, abs=1e-6), key


def test_a_changed_fused_term_is_caught():
    """The comparison the tests above make fails when a form is changed by hand (here: the fine kernel's std)."""
    env = _env("RoArm-Reach-v0", 16)
    manager = env.reward_manager
    gen = torch.Generator().manual_seed(3)
    scramble(env, gen)
    assert mismatches(env, manager) == []
    names = [name for name, _, _ in manager._terms]
    bound = [fused_form(fn)(env, fn, cfg.params) for _, cfg, fn in manager._terms]
    row = names.index("tracking_fine")
    bound[row] = type(bound[row])(bound[row].kernel, bound[row].arrays, bound[row].ints,
                                  (bound[row].floats[0] * 1.05,))
    manager._fused = FusedRows(bound, scale_rows, 1)
    assert mismatches(env, manager) == ["tracking_fine"]

    observations = env.observation_manager  # an observation form built with twice the joint readings' noise
    assert observation_mismatches(env, seed=1) == []
    noise = dict(observations._groups["policy"][1][0][1].noise.__dict__)
    term_noise = observations._groups["policy"][1][0][1].noise
    term_noise.n_max = 2 * noise["n_max"]
    observations._fused["policy"] = observations._fuse_group("policy", True)
    term_noise.n_max = noise["n_max"]
    assert observation_mismatches(env, seed=1) == ["policy/joint_pos"]


def _user_reward(env, asset_cfg):
    """A term a user adds, with no fused form."""
    return env.scene[asset_cfg.name].data.joint_pos.torch[:, 0] ** 2


def test_a_term_without_a_fused_form_keeps_its_manager_readable():
    from roarm_lab.isaaclab_api import RewardTermCfg, SceneEntityCfg

    cfg, _, _ = load_task_configs("RoArm-Reach-v0", [])
    cfg.scene.num_envs = 8
    cfg.rewards.joint_vel = RewardTermCfg(func=_user_reward, weight=-1.0, params={"asset_cfg": SceneEntityCfg("robot")})
    env = make_env("RoArm-Reach-v0", cfg)
    env.reset()
    assert _user_reward not in FUSED_FORMS and rewards.position_command_error in FUSED_FORMS
    assert env.reward_manager._fused is None and env.termination_manager._fused is not None
    _, reward, _, _, _ = env.step(torch.zeros(8, env.action_manager.total_action_dim))
    assert torch.isfinite(reward).all()


def _reset_state(env) -> dict[str, torch.Tensor]:
    """What the reset events change: the articulation's buffers, the servo model's, and the engine's fields."""
    data, servo, sim = env.scene["robot"].data, env.action_manager.get_term("arm_action"), env.sim
    state = {name: getattr(data, name).torch.clone() for name in (
        "joint_pos", "joint_vel", "body_pos_w", "joint_stiffness", "joint_damping", "joint_armature",
        "joint_friction_coeff", "joint_viscous_friction_coeff")}
    state.update(calibration=servo.calibration_offset.clone(), latency=servo._latency.clone(),
                 speed=servo._speed.clone())
    for name in ("full_qpos", "full_qvel", "_gainprm", "_biasprm", "_armature", "_damping", "friction", "_xpos",
                 "_mass", "_inertia", "_geom_friction"):
        if getattr(sim, name, None) is not None:
            state[f"engine {name}"] = torch.from_numpy(np.array(getattr(sim, name)))
    for name, obj in env.scene.rigid_objects.items():
        for field in ("root_pos_w", "root_quat_w", "root_lin_vel_w", "root_ang_vel_w", "body_mass", "body_inertia"):
            state[f"{name} {field}"] = getattr(obj.data, field).torch.clone()
    return state


RESET_DRAWN = {"RoArm-Reach-v0": ("joint_pos", "joint_stiffness", "joint_armature", "calibration", "engine _gainprm"),
               "RoArm-Lift-v0": ("joint_pos", "joint_stiffness", "calibration", "engine _gainprm", "cube root_pos_w",
                                 "cube body_mass", "engine _mass", "engine _geom_friction")}


@pytest.mark.parametrize("task", TASKS)
def test_a_fused_reset_draws_and_writes_what_the_readable_events_do(task):
    """The reset events: the same random numbers (the same stream), into the same buffers and engine fields."""
    fused = _env(task, 16, ["env.seed=3"])  # one seed: the start-up draws (link masses) alike
    readable = _env(task, 16, ["env.seed=3", "env.sim.physics.fused_managers=false"])
    assert fused.event_manager._fused_reset is not None and readable.event_manager._fused_reset is None
    ids = torch.tensor([1, 4, 5, 11])
    before, after, next_draw = {}, {}, {}
    for env in (fused, readable):
        torch.manual_seed(9)
        env.event_manager.apply("reset", ids)  # both start from the same state: reset with the same seed first
        before[env] = _reset_state(env)
        torch.manual_seed(10)
        env.event_manager.apply("reset", ids)
        after[env] = _reset_state(env)
        next_draw[env] = torch.rand(1).item()  # both consumed the same count of the stream
    assert next_draw[fused] == next_draw[readable]
    others = [i for i in range(16) if i not in ids.tolist()]
    for key, value in after[readable].items():
        assert torch.equal(after[fused][key], value), key
        assert torch.equal(after[fused][key][others], before[fused][key][others]), key  # the others untouched
    for key in RESET_DRAWN[task]:
        assert not torch.equal(after[fused][key][ids], before[fused][key][ids]), key  # drawn anew


@pytest.mark.parametrize("task", TASKS)
def test_the_fused_servo_model_moves_the_targets_as_the_readable_one(task):
    """Process and apply on both paths from the same state: large actions (the box and the step limit bind), the
    gripper's sign, every latency; the ring, the delayed targets, the setpoints and the drives' targets agree."""
    envs = {"fused": _env(task, 16), "readable": _env(task, 16, ["env.sim.physics.fused_managers=false"])}
    assert envs["fused"].action_manager._fused is not None and envs["readable"].action_manager._fused is None
    gen = torch.Generator().manual_seed(4)
    dim = envs["fused"].action_manager.total_action_dim
    latencies = {name: torch.randint(0, term.cfg.max_latency_steps + 1, (16,), generator=gen)
                 for name, term in envs["fused"].action_manager._terms.items()}
    for env in envs.values():  # the same start on both
        env.action_manager.reset(torch.arange(16))
        for name, term in env.action_manager._terms.items():
            term.set_latency(latencies[name], torch.arange(16))
            source = envs["fused"].action_manager._terms[name]
            for field in ("_setpoint", "_history", "_processed", "_raw", "_calibration", "_speed"):
                getattr(term, field).copy_(getattr(source, field))
            term._head_slot[:] = source._head_slot
    for _ in range(12):
        action = 30 * torch.randn(16, dim, generator=gen)
        for env in envs.values():
            env.action_manager.process_action(action)
            env.action_manager.apply_action()
        for name in envs["fused"].action_manager._terms:
            fused, readable = (env.action_manager.get_term(name) for env in envs.values())
            assert fused._head == readable._head
            for field in ("_raw", "_history", "_processed", "_setpoint"):
                torch.testing.assert_close(getattr(fused, field), getattr(readable, field), rtol=RTOL, atol=ATOL,
                                           msg=f"{name}.{field}")
        torch.testing.assert_close(*(env.scene["robot"].data.joint_pos_target.torch for env in envs.values()),
                                   rtol=RTOL, atol=ATOL)


def test_the_engine_kernels_copy_and_write_what_the_backend_methods_do():
    """MuJoCo's compiled state copy and reset-row write against the backend contract's plain numpy versions."""
    from roarm_lab.embedded.backends.base import PhysicsBackend

    envs = [_env("RoArm-Reach-v0", 8, ["env.seed=5"]) for _ in range(2)]
    for _ in range(5):
        action = torch.randn(8, envs[0].action_manager.total_action_dim, generator=torch.Generator().manual_seed(6))
        for env in envs:
            env.step(action)
    sim = envs[0].sim
    shapes = [(8, len(sim.joint_names)), (8, len(sim.joint_names)), (8, len(sim.body_names), 3)]
    compiled, plain = ([np.zeros(s, np.float32) for s in shapes] for _ in range(2))
    sim.read_articulation(*compiled)
    PhysicsBackend.read_articulation(sim, *plain)
    for a, b in zip(compiled, plain):
        assert np.array_equal(a, b) and np.abs(a).sum() > 0

    gen = np.random.default_rng(2)
    values = [gen.uniform(0.1, 2.0, (8, len(sim.joint_names))).astype(np.float32) for _ in range(7)]
    rows = np.array([0, 3, 6])
    fields = {"gains": np.array([0, 2, 4]), "armature": None, "friction": np.array([1]), "viscous_friction": None,
              "joint_vel": None, "joint_pos": None}
    envs[0].sim.write_joint_rows(rows, fields, *values)
    PhysicsBackend.write_joint_rows(envs[1].sim, rows, fields, *values)
    for name in ("qpos", "qvel", "_gainprm", "_biasprm", "_armature", "_damping", "friction", "_xpos"):
        a, b = (np.array(getattr(env.sim, name)) for env in envs)
        assert np.array_equal(a, b), name
    assert np.array_equal(envs[0].sim.qpos[rows], values[5][rows].astype(np.float64))


def test_the_fused_reach_command_scores_and_draws_as_the_readable_one():
    """Timers running out mid-episode and resets: the same targets drawn, segments scored, metrics logged."""
    envs = [_env("RoArm-Reach-v0", 16, ["env.seed=8"] + extra)
            for extra in ([], ["env.sim.physics.fused_managers=false"])]
    assert "ee_target" in envs[0].command_manager._fused and not envs[1].command_manager._fused
    start = torch.randint(0, int(envs[0].max_episode_length), (16,), generator=torch.Generator().manual_seed(3))
    actions = torch.randn(200, 16, envs[0].action_manager.total_action_dim, generator=torch.Generator().manual_seed(4))
    for env in envs:
        env.episode_length_buf = start
    timer_draws = 0
    for action in actions:
        states = []
        for env in envs:
            torch.manual_seed(int(env.common_step_counter))
            env.step(0.3 * action)
            term = env.command_manager.get_term("ee_target")
            states.append((term.pos_command_b.clone(), term.time_left.clone(), term.command_counter.clone(),
                           term._segments.clone(), term.metrics["success_rate"].clone(),
                           term.metrics["position_error"].clone(), dict(env.extras["log"])))
        for a, b in zip(states[0][:-1], states[1][:-1]):
            torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)
        for key, value in states[1][-1].items():
            assert float(states[0][-1][key]) == pytest.approx(float(value), rel=1e-5, abs=1e-6), key
        timer_draws += int((states[0][2] > 1).sum())
    assert timer_draws > 0  # targets were redrawn by their timers, not only at resets


def test_a_term_names_its_form_only_inside_the_package():
    """A term class's ``fused_form`` reference is followed into ``roarm_lab`` only: anything else is no form."""
    from roarm_lab.tasks.lift import fused as lift_fused
    from roarm_lab.tasks.lift.mdp import reset_grasp_ready

    assert fused_form(reset_grasp_ready.__new__(reset_grasp_ready)) is lift_fused.grasp_ready

    class Elsewhere:
        fused_form = "os:system"

    class Unqualified:
        fused_form = "roarm_lab.tasks.lift.fused"

    assert fused_form(Elsewhere()) is None and fused_form(Unqualified()) is None


def test_a_zero_in_a_term_parameter_gives_what_torch_gives():
    """IEEE arithmetic in the kernels: an override of std to 0 divides by zero on both paths alike (no exception)."""
    env = _env("RoArm-Reach-v0", 8, ["env.rewards.tracking_fine.params.std=0.0"])
    scramble(env, torch.Generator().manual_seed(2))
    assert mismatches(env, env.reward_manager) == []
