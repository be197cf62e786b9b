"""Train a RoArm task with rsl_rl PPO on either runtime (``scripts/train.py`` calls ``main``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml

from roarm_lab.rl.checkpoints import (CheckpointError, best_checkpoint, check_compatible, create_run_dir,
                                      latest_checkpoint, latest_run_dir, load_checkpoint, restore)
from roarm_lab.rl.run_setup import (add_runtime_arg, choose_runtime, load_task_configs, parse_with_defaults, physics_name,
                              relative, set_device)
from roarm_lab.rl.config_checks import check_flag, check_run_configs
from roarm_lab.rl import preset_files
from roarm_lab.rl.distributed import backend_for, from_torchrun, weights_agree
from roarm_lab.rl.overrides import OverrideError
from roarm_lab.rl.runner import RoArmRunner, restore_env_state
from roarm_lab.rl.runner import to_rsl_rl_dict
from roarm_lab.rl.vecenv import RslRlVecEnvWrapper
from roarm_lab.embedded.configclass import to_dict
from roarm_lab.runtime_choice import RuntimeUnavailable
from roarm_lab.utils.io import (append_text, atomic_write_json, atomic_write_text, disk_full_reported_by_the_caller,
                                free_space, is_disk_full, size_text)
from roarm_lab.utils.provenance import config_hash, git_hash
from roarm_lab.control.layout import RunFiles


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a RoArm task with rsl_rl PPO. Extra arguments env.a.b=v / "
                                "agent.c=v override the task's configs (Hydra syntax; null removes a term).")
    p.add_argument("--task", help="task id, e.g. RoArm-Reach-v0")
    p.add_argument("--num_envs", type=int, help="number of parallel environments")
    p.add_argument("--max_iterations", type=int, help="PPO iterations")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="torch device for the policy update (cpu, cuda:0)")
    p.add_argument("--resume", nargs="?", const="latest", default=None,
                   help="continue the latest run of the experiment, or the run folder / checkpoint given")
    p.add_argument("--run_name", default="", help="suffix of the run folder")
    p.add_argument("--log_root", help="root of the run folders")
    p.add_argument("--physics_threads", type=int, help="MuJoCo threads (0 = all cores)")
    p.add_argument("--keep_checkpoints", type=int, help="model_<N>.pt files kept besides the best (0 = every one)")
    p.add_argument("--preset", action="append", default=[], metavar="FILE",
                   help="a YAML map of override keys to values (configs/presets/); applied before the command line's")
    p.add_argument("--reward-config", dest="reward_config", action="append", default=[], metavar="FILE",
                   help="a YAML map of reward term to weight (term: -3.0), or full override keys")
    p.add_argument("--record-rollouts-every", dest="record_rollouts_every", type=int, metavar="N",
                   help="every N iterations record a few episodes of the current policy (npz, meta.json with a "
                        "physics report) in <run>/rollouts/ (embedded runtime)")
    p.add_argument("--distributed", action="store_true",
                   help="one rank of a data-parallel training under torchrun (num_envs is per rank; gloo on CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (CI logs)")
    add_runtime_arg(p)
    return p


def _resume_point(arg: str, experiment_dir: Path) -> tuple[Path, Path]:
    if arg == "latest":
        run_dir = latest_run_dir(experiment_dir)
        return run_dir, latest_checkpoint(run_dir)
    path = Path(arg)
    if path.is_dir():
        return path, latest_checkpoint(path)
    if path.is_file():
        return path.parent, path
    raise CheckpointError(f"--resume {arg}: no such run folder or checkpoint")


def main(argv: list[str] | None = None, on_iteration: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Train; a full disk anywhere in the run (configs, TensorBoard, progress, checkpoints) is one error line.

    ``on_iteration`` is given each iteration's progress record, with ``env_steps`` (all ranks) and ``run_dir``
    added: how a sweep's scheduler sees a trial, from the training loop itself."""
    where: dict[str, Path] = {}
    try:
        with disk_full_reported_by_the_caller():
            return _main(argv, where, on_iteration)
    except (OSError, RuntimeError) as err:
        folder = where.get("run") or where.get("experiment")
        if folder is None or not is_disk_full(err, folder):
            raise
        print(f"error: {_disk_full_line(err, folder, where.get('run'))}", file=sys.stderr)
        return 1
    finally:
        if where.get("run") is not None:
            (where["run"] / RESERVE).unlink(missing_ok=True)


RESERVE = ".disk_reserve"
RESERVE_BYTES = 16 * 1024
"""A run keeps this much disk in a file of its own while it trains, so that on a full disk the traceback still
fits in its console log (the one error line then says where it is)."""


def _disk_full_line(err: BaseException, folder: Path, run_dir: Path | None) -> str:
    """What filled, how much is left, what is safe and what to do; the traceback goes to the run's log."""
    details = ""
    if run_dir is not None:
        (run_dir / RESERVE).unlink(missing_ok=True)
        frames = traceback.extract_tb(err.__traceback__)[-1:]
        short = ("Traceback (innermost frame only: the disk had no room for more):\n"
                 + "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(err)))
        for text in ("".join(traceback.format_exception(err)), short):  # the whole story, else what fits
            try:
                append_text(RunFiles(run_dir).console, text)
                details = f"; details in {run_dir / 'train_console.log'}"
                break
            except OSError:
                continue
    free, total = free_space(folder)
    why = err.strerror if isinstance(err, OSError) and err.strerror else f"{type(err).__name__}: {str(err)[:120]}"
    try:
        newest = latest_checkpoint(run_dir).name if run_dir is not None else None
    except CheckpointError:
        newest = None
    then = (f"the newest checkpoint {newest} is intact; free some space there, then continue with --resume "
            f"{run_dir}" if newest else "no checkpoint was written; free some space there, then start again")
    return (f"the disk is full: {folder} has {size_text(free)} free of {size_text(total)} ({why}); "
            f"{then}{details}")


def _main(argv: list[str] | None, where: dict[str, Path],
          on_iteration: Callable[[dict[str, Any]], None] | None = None) -> int:
    args, overrides = parse_with_defaults(build_parser(), "train", argv)
    try:
        runtime = choose_runtime(args)
        from_files, preset_record = preset_files.load(args.preset, args.reward_config)
        if from_files:  # a file is data from disk: the faces' safe subset (no code, the limits), then as typed
            from roarm_lab.control.rules import face_task_configs

            try:
                face_task_configs(args.task, from_files)
            except (OverrideError, ValueError) as err:
                raise OverrideError(f"in the --preset / --reward-config files: {err}") from None
        env_cfg, agent_cfg, applied = load_task_configs(args.task, from_files + overrides)
        rank = from_torchrun(args.distributed)
        args.device = rank.device(args.device)
        set_device(env_cfg, agent_cfg, args.device)
        check_flag("--num_envs", args.num_envs)
        check_flag("--max_iterations", args.max_iterations)
        check_flag("--physics_threads", args.physics_threads, at_least=0)
        check_flag("--keep_checkpoints", args.keep_checkpoints, at_least=0)
        check_flag("--record-rollouts-every", args.record_rollouts_every)
        if args.record_rollouts_every and runtime != "embedded":
            raise ValueError("--record-rollouts-every needs the embedded runtime (it runs a second environment in the "
                             "training process; Isaac Lab allows one simulation per process)")
        if args.num_envs is not None:  # 0 is a value (refused above), not "not given"
            env_cfg.scene.num_envs = args.num_envs
        if args.max_iterations is not None:
            agent_cfg.max_iterations = args.max_iterations
        check_run_configs(env_cfg, agent_cfg)
    except (OverrideError, ValueError, RuntimeUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from roarm_lab.registry import make_env, task_profile

    seed = args.seed + rank.rank  # each rank its own environments and draws
    agent_cfg.seed = seed
    agent_cfg.run_name = args.run_name or agent_cfg.run_name
    env_cfg.seed = seed
    if args.physics_threads is not None and runtime == "embedded":
        env_cfg.sim.physics.nthread = args.physics_threads
    torch.manual_seed(seed)
    np.random.seed(seed)

    experiment_dir = where["experiment"] = Path(args.log_root) / agent_cfg.experiment_name
    try:
        if args.resume:
            run_dir, ckpt_path = _resume_point(args.resume, experiment_dir)
            where["run"] = run_dir
            checkpoint = load_checkpoint(ckpt_path)
        else:
            stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
            run_dir = None  # created exclusively once the environment is built
            checkpoint = None
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    env = make_env(args.task, env_cfg)
    vec_env = RslRlVecEnvWrapper(env)
    env_hash, agent_hash = config_hash(env_cfg), config_hash(agent_cfg)
    train_cfg = to_rsl_rl_dict(agent_cfg)  # what rsl_rl is given is what the run folder records
    if run_dir is None and rank.writer:  # two runs started in the same second never share a folder
        run_dir = where["run"] = create_run_dir(experiment_dir,
                                                stamp + (f"_{agent_cfg.run_name}" if agent_cfg.run_name else ""))

    total = agent_cfg.max_iterations
    if getattr(agent_cfg, "logger", None) == "wandb":  # its files go to the run folder, not the working directory
        os.environ.setdefault("WANDB_DIR", str(run_dir))
    profile = task_profile(args.task)
    runner = RoArmRunner(vec_env, train_cfg, log_dir=str(run_dir) if rank.writer else None, device=args.device,
                         total_iterations=total, show_progress=not args.no_progress,
                         **({} if args.keep_checkpoints is None else {"keep_checkpoints": args.keep_checkpoints}),
                         metric_keys=(profile.success_key, profile.error_key),
                         checkpoint_infos={"task": args.task, "runtime": runtime, "env_cfg_hash": env_hash,
                                           "agent_cfg_hash": agent_hash})
    runner.add_git_repo_to_log(__file__)
    start = 0
    if checkpoint is not None:
        try:  # checked against this config before anything in the run folder is rewritten
            check_compatible(checkpoint, ckpt_path, args.task, int(env.observation_manager.group_obs_dim["policy"][0]),
                             env.action_manager.total_action_dim)
            restore(runner.alg, checkpoint, ckpt_path)
            restore_env_state(vec_env, checkpoint.get("env_state"))
        except CheckpointError as err:
            print(f"error: {err}", file=sys.stderr)
            env.close()
            return 2
        start = int(checkpoint.get("iter", -1)) + 1
        runner.current_learning_iteration = start
        runner.logger.start_iteration = start
        runner.logger.resume_clock(RunFiles(run_dir).progress)
        if rank.writer:
            print(f"resuming {relative(run_dir)} from {ckpt_path.name} (iteration {start} of {total})")
    if not rank.writer:  # the other ranks compute; rank 0 writes everything
        runner.learn(num_learning_iterations=max(total - start, 0), init_at_random_ep_len=checkpoint is None)
        weights_agree(runner.alg.get_policy())
        env.close()
        return 0
    reserve = os.open(run_dir / RESERVE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:  # freed when the disk fills: room for the details (never written through a link)
        os.write(reserve, b"\0" * RESERVE_BYTES)
    finally:
        os.close(reserve)
    atomic_write_text(run_dir / "env.yaml", yaml.safe_dump(to_dict(env_cfg), sort_keys=False))
    for i, used in enumerate(preset_record):  # the files as they were checked: the run says which presets made it
        atomic_write_text(run_dir / "presets" / f"{i}_{Path(used['file']).name}", used.pop("text"))
    atomic_write_text(run_dir / "agent.yaml", yaml.safe_dump(to_dict(train_cfg), sort_keys=False))
    ranks = (f" per rank x {rank.world_size} ranks ({backend_for(args.device)})" if rank.distributed else "")
    print(f"training {args.task} on {runtime} ({physics_name(env_cfg)}, {env_cfg.sim.device}): "
          f"{env_cfg.scene.num_envs} envs{ranks}, {total} iterations -> {relative(run_dir)}")
    if applied:
        print("overrides: " + ", ".join(applied))

    began = time.time()
    recorder = None
    after: list[Callable[[int], None]] = []
    if args.record_rollouts_every:
        from roarm_lab.rl.rollout_recorder import RolloutRecorder

        recorder = RolloutRecorder(args.task, env_cfg, args.record_rollouts_every, run_dir)
        after.append(lambda it: recorder(it, runner))
    if on_iteration is not None:
        per_iteration = env_cfg.scene.num_envs * agent_cfg.num_steps_per_env * rank.world_size
        after.append(lambda it: on_iteration({**runner.logger.latest, "env_steps": (it + 1) * per_iteration,
                                              "run_dir": str(run_dir)}))
    if after:
        runner.logger.after_iteration = lambda it: [call(it) for call in after]
    try:
        runner.learn(num_learning_iterations=max(total - start, 0), init_at_random_ep_len=checkpoint is None)
    finally:
        if recorder is not None:
            recorder.close()
    elapsed = time.time() - began
    in_sync = weights_agree(runner.alg.get_policy()) if rank.distributed else None
    final, best = latest_checkpoint(run_dir), best_checkpoint(run_dir)
    info = {
        "task": args.task, "runtime": runtime, "physics": physics_name(env_cfg), "device": env_cfg.sim.device,
        "git": git_hash(), "env_cfg_hash": env_hash, "agent_cfg_hash": agent_hash,
        "seed": args.seed, "num_envs": env_cfg.scene.num_envs, "iterations": total, "resumed_from": start or None,
        "wall_time_s": round(elapsed, 1), "final_checkpoint": final.name, "best_checkpoint": best and best.name,
        "overrides": applied, "presets": preset_record,
        "world_size": rank.world_size, "backend": backend_for(args.device) if rank.distributed else None,
        "ranks_in_sync": in_sync,
        "command": " ".join(sys.argv), "final_metrics": runner.logger.latest,
        "sim_diverged_resets": getattr(env.unwrapped, "sim_diverged_count", None),
    }
    atomic_write_json(RunFiles(run_dir).record, info)
    print(f"done in {elapsed / 60:.1f} min; checkpoint {relative(final)}"
          + (f" (best by success rate: {best.name}, see best.json)" if best else ""))
    print(f"evaluate: python scripts/play.py --task {args.task} --checkpoint {relative(final)}"
          + (" --runtime isaaclab" if runtime == "isaaclab" else ""))
    return 0
