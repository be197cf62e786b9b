"""Evaluate a policy on held-out goals: metrics, optional per-episode rollout files, an error plot.

What is measured is the task's (``tasks/<name>/profile.py``): its measures, read from the noiseless observation
group, at each episode's end from the final observation (before the reset), and its success bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from roarm_lab.utils.figures import save_png
from roarm_lab.mdp.observations import hand_position_b
from roarm_lab.registry import task_profile
from roarm_lab.utils.io import atomic_write, atomic_write_json
from roarm_lab.utils.provenance import git_hash

@dataclass
class EpisodeLog:
    """Per-step traces of one batch of episodes (all environments start and end together)."""

    obs: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[np.ndarray] = field(default_factory=list)
    dones: list[np.ndarray] = field(default_factory=list)
    ee_pos: list[np.ndarray] = field(default_factory=list)
    target_pos: list[np.ndarray] = field(default_factory=list)
    error: list[np.ndarray] = field(default_factory=list)
    physics: list[dict[str, np.ndarray]] = field(default_factory=list)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().copy()


def randomization_sample(env: Any, env_id: int) -> dict[str, Any]:
    """The physical parameters environment ``env_id`` ran with (for rollout metadata), read back from the asset
    and the servo model as either runtime reports them."""
    robot = env.scene["robot"]
    data = robot.data
    term = env.action_manager.get_term(env.action_manager.active_terms[0])

    def row(name: str) -> list[float]:
        return _np(getattr(data, name).torch[env_id]).tolist()

    return {
        "link_masses_kg": dict(zip(robot.body_names, row("body_mass"))),
        "servo_kp": row("joint_stiffness"), "servo_kv": row("joint_damping"), "armature": row("joint_armature"),
        "damping": row("joint_viscous_friction_coeff"), "friction": row("joint_friction_coeff"),
        "calibration_offset": _np(term.calibration_offset[env_id]).tolist(),
        "servo_speed_rad_s": _np(term._speed[env_id]).tolist(),
        "action_latency_steps": int(term._latency[env_id]),
    }


def physics_report(env: Any) -> dict[str, np.ndarray]:
    """What the engine reports of each environment this step (contacts, energy): the embedded runtime's backend
    knows them; on Isaac Lab this is empty and the rollout's meta.json says so."""
    backend = getattr(env.scene["robot"], "backend", None)
    return backend.physics_report() if backend is not None and hasattr(backend, "physics_report") else {}


def summarize_physics(steps: list[dict[str, np.ndarray]], env_id: int) -> dict[str, float]:
    """One episode's physics in numbers: contacts (mean and max per step, steps with any), energy (max, mean)."""
    if not steps or not steps[0]:
        return {}
    out: dict[str, float] = {}
    if "contacts" in steps[0]:
        contacts = np.array([s["contacts"][env_id] for s in steps], dtype=float)
        out.update(contacts_mean=float(contacts.mean()), contacts_max=float(contacts.max()),
                   steps_with_contact=int((contacts > 0).sum()))
    for key in ("kinetic_energy_j", "potential_energy_j"):
        if key in steps[0]:
            values = np.array([s[key][env_id] for s in steps], dtype=float)
            out[f"{key}_max"], out[f"{key}_mean"] = float(values.max()), float(values.mean())
    return out


def observation_term_slice(env: Any, group: str, term: str) -> slice:
    manager = env.observation_manager
    names = manager.active_terms.get(group, [])
    if term not in names:
        raise ValueError(f"evaluation reads a measure from observation term '{group}.{term}', which this config "
                         f"removed; the '{group}' group has {names}")
    start = sum(int(d[0]) for d in manager.group_obs_term_dim[group][:names.index(term)])
    return slice(start, start + int(manager.group_obs_term_dim[group][names.index(term)][0]))


def _stats(final: np.ndarray) -> dict[str, float]:
    return {"mean": float(final.mean()), "median": float(np.median(final)), "p95": float(np.percentile(final, 95)),
            "max": float(final.max())}


def evaluate(env: Any, policy: Callable[[torch.Tensor], torch.Tensor], episodes: int,
             record_dir: Path | None = None, task: str = "", show_progress: bool = True) -> tuple[dict[str, Any], np.ndarray]:
    """Run ``episodes`` episodes of one held-out goal each; return metrics and the (episodes, T) traces of the
    task's primary measure.

    Works on either runtime: the config must set ``compute_final_obs`` (the task's evaluation config does). Each
    episode's figures are its measures in its last observation before the reset; an episode that a termination
    ended early is judged there.
    """
    if not env.cfg.compute_final_obs:
        raise ValueError("evaluation needs env.compute_final_obs=True (the task's evaluation config sets it)")
    if not task:
        raise ValueError("evaluate(task=...) must name the task: its profile says what to measure")
    profile = task_profile(task)
    n = env.num_envs
    command = env.command_manager.get_term(profile.command)
    slices = {m.name: observation_term_slice(env, profile.group, m.term) for m in profile.measures}
    primary = profile.primary.name
    robot = env.scene["robot"]
    hand = robot.find_bodies(profile.hand_frame)[0][0]
    steps = env.max_episode_length
    finals: dict[str, list[np.ndarray]] = {m.name: [] for m in profile.measures}
    successes: list[np.ndarray] = []
    action_rates: list[np.ndarray] = []
    traces: list[np.ndarray] = []
    done_episodes = 0
    physics_summaries: list[dict[str, float]] = []
    reward_terms = {name: env.reward_manager.get_term_cfg(name).weight for name in env.reward_manager.active_terms}
    bar = tqdm(total=episodes, desc="evaluate", unit="ep", disable=not show_progress)
    obs, _ = env.reset()

    def measured(group: torch.Tensor) -> dict[str, torch.Tensor]:
        return {m.name: m.read(group, slices[m.name]) for m in profile.measures}

    while done_episodes < episodes:
        log = EpisodeLog()
        prev_action = None
        rate = torch.zeros(n, device=env.device)
        ended = torch.zeros(n, dtype=torch.bool, device=env.device)
        final = {name: torch.zeros(n, device=env.device) for name in slices}
        samples = [randomization_sample(env, i) for i in range(n)] if record_dir else []
        for t in range(steps):
            policy_obs = obs["policy"]
            with torch.inference_mode():
                action = policy(policy_obs).to(env.device)
            if prev_action is not None:
                rate += ((action - prev_action) ** 2).sum(dim=1)
            prev_action = action
            if record_dir:
                log.obs.append(_np(policy_obs))
                log.actions.append(_np(action))
                log.target_pos.append(_np(command.command[:, :3]))
                log.ee_pos.append(_np(hand_position_b(robot, hand)))
            obs, reward, terminated, truncated, extras = env.step(action)
            done = terminated | truncated
            now = measured(obs[profile.group])
            if bool(done.any()):  # the env has reset these: their last state is in the final observation
                last = measured(extras["final_obs"][profile.group])
                now = {k: torch.where(done, last[k], v) for k, v in now.items()}
                first = done & ~ended
                for k in final:
                    final[k] = torch.where(first, last[k], final[k])
                ended |= done
            log.error.append(_np(now[primary]))
            if record_dir:
                log.rewards.append(_np(reward))
                log.dones.append(_np(done))
                log.physics.append(physics_report(env))
        take = min(n, episodes - done_episodes)
        traces.append(np.stack(log.error, axis=1)[:take])
        for k in final:
            finals[k].append(_np(final[k])[:take])
        successes.append(_np(profile.succeeded(final, command.cfg))[:take])
        action_rates.append(_np(rate / max(steps - 1, 1))[:take])
        if record_dir:
            _record(record_dir, log, samples, take, done_episodes)
            physics_summaries += [summarize_physics(log.physics, i) for i in range(take)]
        done_episodes += take
        bar.update(take)
    bar.close()
    final_by = {k: np.concatenate(v) for k, v in finals.items()}
    stats = _stats(final_by[primary])
    metrics = {
        "episodes": int(len(final_by[primary])),
        "success_rate": float(np.concatenate(successes).mean()),
        "success": profile.success_text,
        **profile.thresholds(command.cfg),
        "error_measure": profile.primary.label,
        "mean_final_error_m": stats["mean"],
        "median_final_error_m": stats["median"],
        "p95_final_error_m": stats["p95"],
        "max_final_error_m": stats["max"],
        "final": {name: _stats(values) for name, values in final_by.items()},
        "mean_action_rate": float(np.concatenate(action_rates).mean()),
        "episode_length_s": float(env.max_episode_length_s),
        "sim_diverged_resets": getattr(env, "sim_diverged_count", None),
    }
    if record_dir:
        atomic_write_json(Path(record_dir) / "meta.json", {
            "task": task, "git": git_hash(), "episodes": metrics["episodes"], "control_period_s": env.step_dt,
            "reward_terms": reward_terms, "fields": ["obs", "actions", "rewards", "dones", "ee_pos", "target_pos",
                                                     "error"],
            "error": f"{profile.primary.label} ({profile.primary.unit})",
            "randomization": "per-episode sample in each episode_XXXXX.npz under 'randomization' (json)",
            "physics": physics_summaries or "this runtime reports no contacts or energy",
            "physics_fields": "per episode: contacts (per control step), energy in J where the engine computes it "
                              "(env.sim.physics.energy=true); masses, gains and friction are in 'randomization'"})
    return metrics, np.concatenate(traces)


def _record(record_dir: Path, log: EpisodeLog, samples: list[dict], take: int, first: int) -> None:
    import json

    record_dir = Path(record_dir)
    arrays = {name: np.stack(getattr(log, name), axis=1) for name in
              ("obs", "actions", "rewards", "dones", "ee_pos", "target_pos", "error")}
    for i in range(take):
        episode = {name: value[i] for name, value in arrays.items()}
        episode["randomization"] = np.array(json.dumps(samples[i]))
        atomic_write(record_dir / f"episode_{first + i:05d}.npz", lambda tmp, ep=episode: _savez(tmp, ep))


def _savez(tmp: str, arrays: dict[str, np.ndarray]) -> None:
    with open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def plot_errors(traces: np.ndarray, control_period_s: float, path: Path, title: str, threshold_m: float | None,
                label: str = "error") -> Path:
    """The task's primary measure over time: median and 5-95 % band across episodes, with its success threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(traces.shape[1]) * control_period_s
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(t, 100 * np.percentile(traces, 5, axis=0), 100 * np.percentile(traces, 95, axis=0),
                    alpha=0.3, label="5-95 %")
    ax.plot(t, 100 * np.median(traces, axis=0), label="median")
    if threshold_m is not None:
        ax.axhline(100 * threshold_m, color="k", linestyle="--", linewidth=1, label="success threshold")
    ax.set_yscale("log")
    ax.set_xlabel("time in episode (s)")
    ax.set_ylabel(f"{label} (cm)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return save_png(fig, path)
