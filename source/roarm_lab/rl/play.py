"""Evaluate and export a checkpoint (``scripts/play.py`` calls ``main``).

Exports ``exported/policy.{onnx,pt,json}`` beside the checkpoint, then evaluates the exported ONNX policy
on held-out targets (one target per episode; success = final error under 2 cm) and writes
``metrics.json`` and ``error_over_time.png`` there too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from roarm_lab.rl.checkpoints import CheckpointError, check_compatible, load_checkpoint, restore, run_network_settings
from roarm_lab.rl.run_setup import (add_runtime_arg, choose_runtime, load_task_configs, parse_with_defaults, physics_name,
                              relative, set_device)
from roarm_lab.rl.config_checks import check_flag
from roarm_lab.policy import LoadedPolicy
from roarm_lab.rl.export import export_policy
from roarm_lab.rl.overrides import OverrideError
from roarm_lab.rl.runner import RoArmRunner
from roarm_lab.rl.runner import to_rsl_rl_dict
from roarm_lab.rl.vecenv import RslRlVecEnvWrapper
from roarm_lab.runtime_choice import RuntimeUnavailable
from roarm_lab.control.layout import EXPORT_RECORD, RunFiles
from roarm_lab.utils.io import atomic_write_json

EXPORT_TOLERANCE = 1e-4
"""Largest difference allowed between the checkpoint's actions and the exported files' (float32 round-off)."""
EXPORT_ENVS = 16
"""Environments an export builds: their first observations are what the exported files are checked on."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Export a checkpoint and evaluate it on held-out targets.")
    p.add_argument("--task")
    p.add_argument("--checkpoint", required=True, help="path to model_XXX.pt")
    p.add_argument("--episodes", type=int)
    p.add_argument("--num_envs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--randomize", action="store_true", help="keep domain randomization and observation noise on")
    p.add_argument("--policy", choices=["onnx", "torchscript", "checkpoint"], default="onnx",
                   help="which form of the policy to evaluate (default: the exported ONNX file)")
    p.add_argument("--export-dir", help="where to export (default: <checkpoint dir>/exported)")
    p.add_argument("--record-rollouts", metavar="DIR", help="write one .npz per episode and meta.json here")
    p.add_argument("--export-only", action="store_true", help="export (and check the exported files against the "
                   "checkpoint's policy), evaluate nothing")
    p.add_argument("--physics_threads", type=int)
    p.add_argument("--no-progress", action="store_true")
    add_runtime_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_with_defaults(build_parser(), "play", argv)
    try:
        runtime = choose_runtime(args)
        from roarm_lab.registry import make_env, task_spec

        task_spec(args.task)
        env_cfg, agent_cfg, applied = load_task_configs(args.task, overrides)
        set_device(env_cfg, None, args.device)
        for flag, value in (("--episodes", args.episodes), ("--num_envs", args.num_envs)):
            check_flag(flag, value)
        check_flag("--physics_threads", args.physics_threads, at_least=0)
        checkpoint = load_checkpoint(args.checkpoint)
    except (OverrideError, CheckpointError, ValueError, RuntimeUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from roarm_lab.registry import task_profile
    from roarm_lab.rl.evaluate import evaluate, plot_errors
    env_cfg.evaluation_mode(randomize=args.randomize)
    env_cfg.scene.num_envs = EXPORT_ENVS if args.export_only else min(args.num_envs, args.episodes)
    env_cfg.seed = args.seed
    if args.physics_threads is not None and runtime == "embedded":
        env_cfg.sim.physics.nthread = args.physics_threads
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    env = make_env(args.task, env_cfg)
    vec_env = RslRlVecEnvWrapper(env)
    try:
        check_compatible(checkpoint, args.checkpoint, args.task, int(env.observation_manager.group_obs_dim["policy"][0]),
                         env.action_manager.total_action_dim)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    train_cfg = to_rsl_rl_dict(agent_cfg)
    run_agent = Path(args.checkpoint).resolve().parent / "agent.yaml"
    try:
        if run_agent.exists():  # build the networks the checkpoint was trained with (checked: no foreign classes)
            train_cfg.update(run_network_settings(run_agent, train_cfg))
        runner = RoArmRunner(vec_env, train_cfg, log_dir=None, device=args.device, total_iterations=0,
                             show_progress=False)
        restore(runner.alg, checkpoint, args.checkpoint, {"actor": True})  # the file is already loaded safely above
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    actor = runner.get_inference_policy("cpu")

    ckpt_dir = Path(args.checkpoint).resolve().parent
    export_dir = Path(args.export_dir) if args.export_dir else RunFiles(ckpt_dir).export_dir
    files = export_policy(actor, env, args.task, export_dir)
    print(f"exported {', '.join(relative(p) for p in files.values())}")
    record = export_record(actor, export_dir, Path(args.checkpoint), files, vec_env.get_observations()["policy"])
    print(f"export check: ONNX and TorchScript match the checkpoint's policy within {record['max_abs_diff']:.1e}")
    if args.export_only:
        return 0

    if args.policy in ("onnx", "torchscript"):  # the exported file, loaded as every other consumer loads it
        policy = LoadedPolicy.load(export_dir, args.policy).as_torch()
    else:
        policy = lambda obs: actor(TensorDict({"policy": obs}, batch_size=[obs.shape[0]]))  # noqa: E731
    rollouts = Path(args.record_rollouts) if args.record_rollouts else None
    metrics, traces = evaluate(env, policy, args.episodes, record_dir=rollouts, task=args.task,
                               show_progress=not args.no_progress)
    metrics.update({"task": args.task, "runtime": runtime, "physics": physics_name(env_cfg), "device": env_cfg.sim.device,
                    "checkpoint": str(Path(args.checkpoint)), "randomize": args.randomize,
                    "policy": args.policy, "seed": args.seed, "overrides": applied})
    suffix = "_randomized" if args.randomize else ""
    atomic_write_json(export_dir / RunFiles(export_dir.parent).metrics(args.randomize).name, metrics)
    profile = task_profile(args.task)
    bound = next((b for b in profile.success if b.measure == profile.primary.name), None)
    plot = plot_errors(traces, env.step_dt, export_dir / f"error_over_time{suffix}.png",
                       f"{args.task}: {metrics['episodes']} held-out goals" + (" (randomized)" if args.randomize else ""),
                       metrics[bound.threshold] if bound else None, profile.primary.label)
    print(f"success_rate {metrics['success_rate']:.3f}  mean_final_{profile.primary.label.replace(' ', '_')} "
          f"{100 * metrics['mean_final_error_m']:.2f} cm  p95 {100 * metrics['p95_final_error_m']:.2f} cm  "
          f"mean_action_rate {metrics['mean_action_rate']:.4f}")
    for name, stats in list(metrics["final"].items())[1:]:
        print(f"  final {profile.measure(name).label}: mean {100 * stats['mean']:.2f} cm, median {100 * stats['median']:.2f} cm")
    print(f"wrote {relative(export_dir / RunFiles(export_dir.parent).metrics(args.randomize).name)} and {relative(plot)}")
    return 0


def export_record(actor: Any, export_dir: Path, checkpoint: Path, files: dict[str, Path], obs: torch.Tensor) -> dict:
    """Check both exported files against the checkpoint's policy on real observations; write ``export.json``.

    The export's own figures: which checkpoint, the files, the sizes and the largest difference between the
    checkpoint's actions and the exported files' (what an export job reports; success rates come from evaluations).
    """
    obs = obs.detach().to("cpu", torch.float32)
    with torch.inference_mode():
        expected = actor(TensorDict({"policy": obs}, batch_size=[obs.shape[0]])).numpy()
    diff = 0.0
    for backend in ("onnx", "torchscript"):
        got = LoadedPolicy.load(export_dir, backend).infer_batch(obs.numpy())
        diff = max(diff, float(np.abs(got - expected).max()))
    record = {"checkpoint": checkpoint.name, "checkpoint_path": str(checkpoint),
              "files": sorted(p.name for p in files.values()), "obs_size": int(obs.shape[1]),
              "action_size": int(expected.shape[1]), "max_abs_diff": diff, "checked_observations": int(obs.shape[0])}
    if diff > EXPORT_TOLERANCE:
        raise SystemExit(f"error: the exported policy differs from the checkpoint's by {diff:.2e} (more than "
                         f"{EXPORT_TOLERANCE:.0e}); do not use the export in {export_dir}")
    atomic_write_json(export_dir / EXPORT_RECORD, record)
    return record
