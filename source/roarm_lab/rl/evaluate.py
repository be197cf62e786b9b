"""Evaluate a policy on held-out targets: metrics, optional per-episode rollout files, an error plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from roarm_lab.utils.io import atomic_write, atomic_write_json
from roarm_lab.utils.provenance import git_hash

SUCCESS_THRESHOLD_M = 0.02
COMMAND = "ee_pose"


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


def randomization_sample(env: Any, env_id: int) -> dict[str, Any]:
    """The physical parameters environment ``env_id`` ran with (for rollout metadata)."""
    sim = env.sim
    kp, kv = sim.gains()
    term = env.action_manager.get_term(env.action_manager.active_terms[0])
    return {
        "link_masses_kg": dict(zip(env.scene["robot"].body_names, sim.masses()[env_id].tolist())),
        "servo_kp": kp[env_id].tolist(), "servo_kv": kv[env_id].tolist(),
        "armature": sim.armature()[env_id].tolist(), "damping": sim.damping()[env_id].tolist(),
        "friction": sim.friction[env_id].tolist(), "calibration_offset": sim.calibration_offset[env_id].tolist(),
        "action_latency_steps": int(term._latency[env_id]),
    }


def evaluate(env: Any, policy: Callable[[torch.Tensor], torch.Tensor], episodes: int,
             record_dir: Path | None = None, task: str = "", show_progress: bool = True) -> tuple[dict[str, Any], np.ndarray]:
    """Run ``episodes`` episodes of one held-out target each; return metrics and the (episodes, T) error traces."""
    n = env.num_envs
    command = env.command_manager.get_term(COMMAND)
    robot = env.scene["robot"]
    body = command.body_idx
    steps = env.max_episode_length
    final_errors: list[np.ndarray] = []
    action_rates: list[np.ndarray] = []
    traces: list[np.ndarray] = []
    done_episodes = 0
    reward_terms = {name: env.reward_manager.get_term_cfg(name).weight for name in env.reward_manager.active_terms}
    bar = tqdm(total=episodes, desc="evaluate", unit="ep", disable=not show_progress)
    obs, _ = env.reset()
    while done_episodes < episodes:
        log = EpisodeLog()
        prev_action = torch.zeros(n, env.action_manager.total_action_dim)
        rate = torch.zeros(n)
        samples = [randomization_sample(env, i) for i in range(n)] if record_dir else []
        for t in range(steps):
            policy_obs = obs["policy"]
            with torch.inference_mode():
                action = policy(policy_obs)
            rate += ((action - prev_action) ** 2).sum(dim=1) if t > 0 else 0.0
            prev_action = action
            if record_dir:
                log.obs.append(policy_obs.numpy().copy())
                log.actions.append(action.numpy().copy())
                log.target_pos.append(command.command.numpy().copy())
            obs, reward, terminated, truncated, _ = env.step(action)
            done = terminated | truncated
            # after the last step the env has already reset: take the error it recorded for the episode
            err = torch.where(done, command.last_episode_final_error, command.metrics["position_error"])
            log.error.append(err.numpy().copy())
            if record_dir:
                ee = robot.data.body_pos_w[:, body] - robot.data.root_pos_w
                log.ee_pos.append(ee.numpy().copy())
                log.rewards.append(reward.numpy().copy())
                log.dones.append(done.numpy().copy())
        take = min(n, episodes - done_episodes)
        errors = np.stack(log.error, axis=1)[:take]
        traces.append(errors)
        final_errors.append(errors[:, -1])
        action_rates.append((rate / max(steps - 1, 1)).numpy()[:take])
        if record_dir:
            _record(record_dir, log, samples, take, done_episodes)
        done_episodes += take
        bar.update(take)
    bar.close()
    final = np.concatenate(final_errors)
    metrics = {
        "episodes": int(len(final)),
        "success_rate": float((final < SUCCESS_THRESHOLD_M).mean()),
        "success_threshold_m": SUCCESS_THRESHOLD_M,
        "mean_final_error_m": float(final.mean()),
        "median_final_error_m": float(np.median(final)),
        "p95_final_error_m": float(np.percentile(final, 95)),
        "max_final_error_m": float(final.max()),
        "mean_action_rate": float(np.concatenate(action_rates).mean()),
        "episode_length_s": float(env.max_episode_length_s),
        "sim_diverged_resets": int(env.sim_diverged_count),
    }
    if record_dir:
        atomic_write_json(Path(record_dir) / "meta.json", {
            "task": task, "git": git_hash(), "episodes": metrics["episodes"], "control_period_s": env.step_dt,
            "reward_terms": reward_terms, "fields": ["obs", "actions", "rewards", "dones", "ee_pos", "target_pos",
                                                     "error"],
            "randomization": "per-episode sample in each episode_XXXXX.npz under 'randomization' (json)"})
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


def plot_errors(traces: np.ndarray, control_period_s: float, path: Path, title: str) -> Path:
    """Error over time: median and 5-95 % band across episodes, with the success threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(traces.shape[1]) * control_period_s
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(t, 100 * np.percentile(traces, 5, axis=0), 100 * np.percentile(traces, 95, axis=0),
                    alpha=0.3, label="5-95 %")
    ax.plot(t, 100 * np.median(traces, axis=0), label="median")
    ax.axhline(100 * SUCCESS_THRESHOLD_M, color="k", linestyle="--", linewidth=1, label="success threshold")
    ax.set_yscale("log")
    ax.set_xlabel("time in episode (s)")
    ax.set_ylabel("hand-to-target error (cm)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path
