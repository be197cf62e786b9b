"""Step response of each arm joint on the selected runtime: the first check that two runtimes move one arm.

From home, environment ``i`` steps arm joint ``i`` by ``--step`` rad and holds it; the nominal arm (no
randomization) is recorded at the control rate. ``--servo raw`` bypasses the servo model (no latency, no
slew: the drive's own PD response, i.e. the physics); ``--servo nominal`` keeps the task's servo model at its
nominal latency and speed (what a policy feels). Each run writes an ``.npz``; ``--plot`` overlays runs made
on different runtimes (different venvs), one panel per joint::

    python scripts/step_response.py --runtime embedded --out logs/step/embedded.npz
    .venv-isaaclab/bin/python scripts/step_response.py --runtime isaaclab --out logs/step/isaaclab.npz
    python scripts/step_response.py --plot logs/step/embedded.npz logs/step/isaaclab.npz --png docs/step_response.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from roarm_lab.utils.figures import save_png
from roarm_lab import DEFAULT_TASK
from roarm_lab.assets.joint_table import joint
from roarm_lab.assets.physics import SERVO_LATENCY_STEPS
from roarm_lab.rl.run_setup import add_runtime_arg, choose_runtime, load_task_configs, physics_name, set_device
from roarm_lab.utils.io import atomic_write

TASK = DEFAULT_TASK


def record(step_rad: float, seconds: float, servo: str, device: str = "cpu") -> dict[str, np.ndarray]:
    """Joint trajectories (envs, T, joints) of the five single-joint steps on the selected runtime."""
    from roarm_lab.registry import make_env, task_profile

    env_cfg, _, _ = load_task_configs(TASK, [])
    set_device(env_cfg, None, device)
    arm = task_profile(TASK).arm_action
    arm_joints = len(getattr(env_cfg.actions, arm).joint_names)
    env_cfg.scene.num_envs = arm_joints
    env_cfg.curriculum = None
    for name in [f for f in vars(env_cfg.events) if not f.startswith("_")]:
        if name != "reset_robot_joints":
            setattr(env_cfg.events, name, None)
    env_cfg.events.reset_robot_joints.params["position_range"] = (0.0, 0.0)
    action_cfg = getattr(env_cfg.actions, arm)
    action_cfg.mode, action_cfg.scale = "absolute", 1.0
    if servo == "raw":
        action_cfg.max_step, action_cfg.servo_speed, action_cfg.servo_deadband = None, None, 0.0
    env = make_env(TASK, env_cfg)
    try:
        env.reset()
        term = env.action_manager.get_term(arm)
        latency = 0 if servo == "raw" else SERVO_LATENCY_STEPS  # the arm's delay, in steps
        term.set_latency(torch.full((arm_joints,), latency, device=env.device, dtype=torch.long),
                         torch.arange(arm_joints, device=env.device))
        action = torch.zeros(arm_joints, arm_joints, device=env.device)
        action[torch.arange(arm_joints), torch.arange(arm_joints)] = step_rad
        robot = env.scene["robot"]
        steps = int(round(seconds / env.step_dt))
        q = [robot.data.joint_pos.torch.cpu().numpy().copy()]
        for _ in range(steps):
            env.step(action)
            q.append(robot.data.joint_pos.torch.cpu().numpy().copy())
        home = robot.data.default_joint_pos.torch.cpu().numpy()[0]
        return {"t": np.arange(steps + 1) * env.step_dt, "q": np.stack(q, axis=1), "home": home,
                "step_rad": np.array(step_rad), "joint_names": np.array(term.joint_names),
                "physics": np.array(physics_name(env_cfg)), "servo": np.array(servo)}
    finally:
        env.close()


def plot(paths: list[Path], png: Path) -> Path:
    """One panel per joint: each run's response (joint minus home), with the commanded step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(p, np.load(p)) for p in paths]
    names = [str(n) for n in runs[0][1]["joint_names"]]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), sharey=True)
    for j, (ax, name) in enumerate(zip(axes, names)):
        for path, run in runs:
            response = run["q"][j, :, j] - run["home"][j]
            ax.plot(run["t"], response, label=f"{run['runtime']} ({run['servo']})" if "runtime" in run else path.stem)
        ax.axhline(float(runs[0][1]["step_rad"]), color="k", linestyle="--", linewidth=0.8)
        ax.set_title(joint(name).short, fontsize=10)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("joint minus home (rad)")
    axes[-1].legend(fontsize=8)
    fig.suptitle("RoArm-M3 single-joint 0.4 rad steps, nominal arm: raw drive and with the servo model "
                 "(0.2 s latency, 2 rad/s)")
    fig.tight_layout()
    return save_png(fig, png)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_runtime_arg(p)
    p.add_argument("--out", type=Path, help="where to write this runtime's .npz")
    p.add_argument("--step", type=float, default=0.4, help="step size (rad)")
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--servo", choices=["raw", "nominal"], default="raw")
    p.add_argument("--device", default="cpu")
    p.add_argument("--plot", type=Path, nargs="+", help=".npz files to overlay (no simulation)")
    p.add_argument("--png", type=Path, default=Path("docs/step_response.png"))
    args = p.parse_args(argv)
    if args.plot:
        print(f"wrote {plot(args.plot, args.png)}")
        return 0
    if args.out is None:
        p.error("give --out FILE.npz to record, or --plot A.npz B.npz to compare")
    runtime = choose_runtime(args)
    data = record(args.step, args.seconds, args.servo, args.device)
    data["runtime"] = np.array(runtime)
    atomic_write(args.out, lambda tmp: np.savez(open(tmp, "wb"), **data))
    final = data["q"][np.arange(len(data["home"]) - 1), -1, np.arange(len(data["home"]) - 1)] - data["home"][:-1]
    print(f"{runtime} ({data['physics']}, servo {args.servo}): final steps {np.round(final, 4).tolist()} "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
