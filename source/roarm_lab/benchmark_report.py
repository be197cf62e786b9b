"""docs/benchmarks.md from one command: where a training iteration goes, the environment's cost against
``num_envs``, and the gateway's latency against a bare ZeroMQ echo, with plots.

    python scripts/benchmark_report.py            # about 8 minutes on 2 cores; writes docs/benchmarks.md

Each part is the project's own benchmark (``rl/benchmark.py``, ``gateway/benchmark.py``); this module runs them,
draws the figures and writes the page. Earlier sessions' measurements and what they found are kept in
docs/benchmarks_history.md. Run it on an idle machine: every figure is a median, but a shared machine moves them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

from roarm_lab.utils.figures import save_png
from roarm_lab.utils.io import atomic_write_text

BEFORE_BATCH = ["agent.num_steps_per_env=24", "agent.algorithm.num_learning_epochs=5",
                "agent.algorithm.num_mini_batches=4"]
"""The reach default before the sweep of 2026-12-07 (700 iterations of 1024 x 24, 5 epochs of 4 mini-batches): the
batch shape is what sets an iteration's time; learning rate, gamma and entropy do not."""
BEFORE_ITERATIONS = 700
TARGETS = {"p50_over_router": 1.5, "four_clients_per_s": 10_000, "full_engine_512": 1.25, "full_engine_2048": 1.10}
"""Issue 30's targets."""


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import mujoco
    import torch

    versions = [f"Python {platform.python_version()}", f"torch {torch.__version__}", f"MuJoCo {mujoco.__version__}"]
    for name in ("numba", "msgspec", "onnxruntime"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            pass
    return f"{model}, {os.cpu_count()} cores; " + ", ".join(versions)


def untrained_export(folder: Path) -> Path:
    """The default reach policy's network, untrained, exported as play.py exports (latency does not depend on
    the weights)."""
    from roarm_lab.registry import load_cfg_from_registry, make_env
    from roarm_lab.rl.export import export_policy
    from roarm_lab.rl.runner import RoArmRunner, to_rsl_rl_dict
    from roarm_lab.rl.run_setup import load_task_configs
    from roarm_lab.rl.vecenv import RslRlVecEnvWrapper
    from roarm_lab import DEFAULT_TASK

    cfg, _, _ = load_task_configs(DEFAULT_TASK, [])
    cfg.scene.num_envs = 4
    env = make_env(DEFAULT_TASK, cfg)
    agent = load_cfg_from_registry(DEFAULT_TASK, "rsl_rl_cfg_entry_point")
    runner = RoArmRunner(RslRlVecEnvWrapper(env), to_rsl_rl_dict(agent), log_dir=None, device="cpu",
                         total_iterations=0, show_progress=False)
    out = folder / "exported"
    export_policy(runner.alg.get_policy(), env, DEFAULT_TASK, out)
    env.close()
    return out


def split_section(iterations: int) -> tuple[str, dict[str, float]]:
    from roarm_lab.registry import load_cfg_from_registry
    from roarm_lab import DEFAULT_TASK
    from roarm_lab.rl.benchmark import task_split

    print(f"iteration split: {iterations} profiled iterations, before and after", flush=True)
    before, before_agent = task_split(iterations, BEFORE_BATCH)
    after, after_agent = task_split(iterations)
    default_iterations = load_cfg_from_registry(DEFAULT_TASK, "rsl_rl_cfg_entry_point").max_iterations
    steps = {"before": 1024 * before_agent.num_steps_per_env, "after": 1024 * after_agent.num_steps_per_env}
    lines = ["| part | before: s / iteration | share | after: s / iteration | share |", "|---|---:|---:|---:|---:|"]
    for (label, b), (_, a) in zip(before, after):
        lines.append(f"| {label.strip()} | {b:.3f} | {100 * b / before[-1][1]:.0f} % | {a:.3f} | "
                     f"{100 * a / after[-1][1]:.0f} % |")
    total_b, total_a = before[-1][1], after[-1][1]
    lines += ["", "| | before | after |", "|---|---:|---:|",
              f"| batch | 1024 x {before_agent.num_steps_per_env}, {before_agent.algorithm.num_learning_epochs} epochs "
              f"x {before_agent.algorithm.num_mini_batches} | 1024 x {after_agent.num_steps_per_env}, "
              f"{after_agent.algorithm.num_learning_epochs} epochs x {after_agent.algorithm.num_mini_batches} |",
              f"| seconds per million env-steps | {total_b / steps['before'] * 1e6:.1f} | "
              f"{total_a / steps['after'] * 1e6:.1f} |",
              f"| the default training (iterations x s / iteration) | {BEFORE_ITERATIONS} x {total_b:.2f} s = "
              f"{BEFORE_ITERATIONS * total_b / 60:.1f} min | {default_iterations} x {total_a:.2f} s = "
              f"{default_iterations * total_a / 60:.1f} min |"]
    samples_b, samples_a = BEFORE_ITERATIONS * steps["before"], default_iterations * steps["after"]
    per_b, per_a = total_b / steps["before"], total_a / steps["after"]
    lines += ["", f"A sample costs {100 * (per_a / per_b - 1):+.0f} % in the new batch (the update's share: "
              f"{100 * before[0][1] / total_b:.0f} % before, {100 * after[0][1] / total_a:.0f} % after); the default "
              f"trains in less time because it needs {samples_a / 1e6:.1f} M samples instead of "
              f"{samples_b / 1e6:.1f} M."]
    return "\n".join(lines), {"before_s": total_b, "after_s": total_a}


def scaling_section(num_envs: list[int], docs: Path) -> tuple[str, dict[str, float]]:
    from roarm_lab.rl.benchmark import _isolated, plot_scaling
    from roarm_lab.utils.io import atomic_write_json

    argv = ["--seconds", "6", "--repeats", "3", "--train_iterations", "2", "--device", "cpu", "--runtime",
            "embedded"]
    rows = []
    for n in num_envs:
        print(f"environment: num_envs {n} (a fresh process each)", flush=True)
        rows.append(_isolated(n, argv))
    atomic_write_json(docs / "scaling_envs.json", rows)
    plot_scaling(rows, docs / "scaling_envs.png")
    lines = ["| num_envs | raw env-steps/s | engine in the task's step | full env-steps/s | full / raw | "
             "**full / engine** | PPO training env-steps/s | peak RSS |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['num_envs']} | {r['raw']:,.0f} | {r['engine']:,.0f} | {r['full']:,.0f} | "
                     f"{r['ratio']:.2f} | **{r['ratio_engine']:.2f}** | {r['train']:,.0f} | {r['rss_mb']:,.0f} MB |")
    by_n = {r["num_envs"]: r["ratio_engine"] for r in rows}
    return "\n".join(lines), {"full_engine_512": by_n.get(512, float("nan")),
                              "full_engine_2048": by_n.get(2048, float("nan"))}


def phases_section(num_envs: tuple[int, ...] = (512, 2048), seconds: float = 12.0) -> str:
    """The fused managers against the readable term functions: full / engine of each (one process per
    ``num_envs``, rounds alternating) and the milliseconds per step of each phase on each path."""
    from roarm_lab.rl.benchmark import compare_managers

    results = {}
    for n in num_envs:
        print(f"managers, fused and readable: num_envs {n}", flush=True)
        results[n] = compare_managers(n, seconds)
    header = " | ".join(f"{n} envs: readable | {n} envs: fused" for n in num_envs)
    lines = [f"| phase (ms per step) | {header} |", "|---|" + "---:|---:|" * len(num_envs)]
    for i, (label, _) in enumerate(results[num_envs[0]]["readable"]["phases"]):
        cells = " | ".join(f"{results[n]['readable']['phases'][i][1]:.3f} | {results[n]['fused']['phases'][i][1]:.3f}"
                           for n in num_envs)
        lines.append(f"| {label} | {cells} |")
    ratios = " | ".join(f"{results[n]['readable']['ratio_engine']:.2f} | **{results[n]['fused']['ratio_engine']:.2f}**"
                        for n in num_envs)
    lines.append(f"| **full / engine** (median of the alternating rounds) | {ratios} |")
    return "\n".join(lines)


def plot_latency(samples: list[dict], png: Path) -> Path:
    """The 1 kHz round trips as distributions: the gateway against the REQ/REP and ROUTER echoes of the same run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.logspace(np.log10(50), np.log10(5000), 80)
    for phase, label, color in (("gateway_1khz", "gateway (infer)", "C0"),
                                ("router_echo_1khz", "ROUTER echo", "0.3"),
                                ("req_rep_echo_1khz", "REQ/REP echo", "0.65")):
        values = np.array([float(s["round_trip_us"]) for s in samples if s["phase"] == phase])
        if values.size == 0:
            continue
        hist.hist(values, bins=bins, histtype="step", color=color, linewidth=1.4,
                  label=f"{label}: p50 {np.percentile(values, 50):.0f} us")
        ordered = np.sort(values)
        cdf.plot(ordered, np.arange(1, ordered.size + 1) / ordered.size, color=color, label=label)
    for ax in (hist, cdf):
        ax.set_xscale("log")
        ax.set_xlabel("round trip (us), one client at 1 kHz, loopback TCP")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    hist.set_ylabel("requests")
    cdf.set_ylabel("fraction of requests")
    fig.suptitle("Policy gateway latency against a bare ZeroMQ echo (same run, same machine)", fontsize=10)
    fig.tight_layout()
    return save_png(fig, png)


PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9)


def latency_percentiles(samples: list[dict]) -> dict[str, dict[str, float]]:
    """Each 1 kHz phase's round trips as percentiles (the page's raw data; every sample is ``--csv``'s job)."""
    out = {}
    for phase in sorted({s["phase"] for s in samples if s["phase"].endswith("_1khz")}):
        values = np.array([float(s["round_trip_us"]) for s in samples if s["phase"] == phase])
        out[phase] = {f"p{q:g}": round(float(v), 1) for q, v in zip(PERCENTILES, np.percentile(values, PERCENTILES))}
        out[phase]["count"] = int(values.size)
    return out


def gateway_section(policy: Path, docs: Path) -> tuple[str, dict[str, float]]:
    from roarm_lab.gateway.benchmark import _port, _start_gateway, inference_costs, run_benchmark
    from roarm_lab.utils.io import atomic_write_json
    from roarm_lab.policy import LoadedPolicy

    print("gateway: inference candidates, then latency, throughput, order, deadlines", flush=True)
    costs = inference_costs(str(policy))
    loaded = LoadedPolicy.load(policy, compiled=True)
    port = _port()
    gateway = _start_gateway(str(policy), port)
    samples: list[dict] = []
    figures = run_benchmark(str(policy), f"tcp://127.0.0.1:{port}", gateway, loaded.obs_size, 5000, 5.0, 20000,
                            samples)
    atomic_write_json(docs / "gateway_latency.json", {"figures": figures, "inference_us": costs,
                                                      "round_trip_percentiles_us": latency_percentiles(samples)})
    plot_latency(samples, docs / "gateway_latency.png")
    lines = ["Inference of one observation, microseconds per call (median of five rounds): " +
             ", ".join(f"{k} **{v:.1f}**" for k, v in costs.items()) + f". The gateway runs `{loaded.inference}`.",
             "", "| one client at 1 kHz | p50 | p99 |", "|---|---:|---:|",
             f"| gateway `infer` | **{figures['gateway_p50_us']:.0f} us** | {figures['gateway_p99_us']:.0f} us |",
             f"| ROUTER echo (the gateway's socket type) | {figures['router_p50_us']:.0f} us | "
             f"{figures['router_p99_us']:.0f} us |",
             f"| REQ/REP echo | {figures['req_rep_p50_us']:.0f} us | {figures['req_rep_p99_us']:.0f} us |",
             f"| gateway / ROUTER echo | **{figures['p50_over_router']:.2f}** | "
             f"{figures['gateway_p99_us'] / figures['router_p99_us']:.2f} |",
             "", f"- Four client processes as fast as they go: **{figures['four_clients_per_s']:,.0f} requests/s**.",
             f"- 20,000 requests in order: {figures['misordered']:.0f} misordered.",
             f"- Deadline 5 ms with a 30 ms inference: {figures['deadline_flagged']:.0f} of 50 answered with the "
             f"safe action, flagged, the client waiting {figures['deadline_cost_p50_ms']:.2f} ms (p50)."]
    return "\n".join(lines), figures


def verdict(name: str, value: float, target: float, higher_is_better: bool = False) -> str:
    met = value >= target if higher_is_better else value <= target
    shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return f"| {name} | {'>=' if higher_is_better else '<='} {target:,g} | {shown} | {'met' if met else 'missed'} |"


def write_page(path: Path, parts: dict[str, str], figures: dict[str, float], command: str) -> None:
    targets = ["| issue 30's target | target | measured | |", "|---|---:|---:|---|",
               verdict("full / engine at 512 envs", figures["full_engine_512"], TARGETS["full_engine_512"]),
               verdict("full / engine at 2048 envs", figures["full_engine_2048"], TARGETS["full_engine_2048"]),
               verdict("gateway p50 / ROUTER echo p50", figures["p50_over_router"], TARGETS["p50_over_router"]),
               verdict("gateway, 4 clients, requests/s", figures["four_clients_per_s"], TARGETS["four_clients_per_s"],
                       higher_is_better=True)]
    text = f"""# Benchmarks

Written by `{command}` on {datetime.date.today().isoformat()}; do not edit by hand, run it again.
Machine: {machine()}.
Earlier sessions' measurements, and what each change of the engine, the managers and the defaults bought, are in
[benchmarks_history.md](benchmarks_history.md) (sim-to-sim transfer, the soak, the reach defaults' history).

{chr(10).join(targets)}

## Where a training iteration goes (`RoArm-Reach-v0`, 1024 environments)

cProfile over rsl_rl iterations (`python scripts/benchmark.py --split N` prints one; the profiler adds a few per
cent). *Before* is the batch of the default until 2026-12-07 (700 iterations); *after*, today's default, from the
sweep of docs/scaling.md.

{parts['split']}

## The environment against `num_envs`

Each `num_envs` in a fresh process. *raw*: the task's MuJoCo model stepped with random targets (no contacts);
*engine*: `mujoco.batch`'s time inside the task's own step (arms touching the table); *full*: the whole
environment step with partial resets as in training. **full / engine** is what the managers cost on top of the
physics. Raw data: [scaling_envs.json](scaling_envs.json).

![env-steps/s, full / engine and memory against num_envs](scaling_envs.png)

{parts['scaling']}

### Where an environment step goes: fused managers against the readable terms

The embedded runtime runs each manager's terms as one compiled call (their fused forms, `mdp/fused/`; the readable
term functions stay the source of truth, and `tests/test_fused_managers.py` holds each form to its function).
*readable* is the same environment with `env.sim.physics.fused_managers=false`; both are built in one process and
measured in alternating rounds (`python scripts/benchmark.py --num_envs 512 2048 --compare-managers`). Each phase's
method is timed in place during the full step (random actions, episodes ending as in training):

{parts['phases']}

## The policy gateway

The server in its own process, the clients in others, loopback TCP; the echoes run in the same command, so the
ratio compares like with like. Percentiles of each distribution: [gateway_latency.json](gateway_latency.json)
(`python scripts/benchmark_gateway.py --policy <run>/exported --csv FILE` keeps every sample).

![gateway round trips against the echoes](gateway_latency.png)

{parts['gateway']}
"""
    atomic_write_text(path, text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=Path, default=Path("docs"), help="where benchmarks.md and its figures go")
    p.add_argument("--num_envs", type=int, nargs="+", default=[128, 256, 512, 1024, 2048, 4096])
    p.add_argument("--split-iterations", type=int, default=6)
    p.add_argument("--policy", type=Path, help="an exported/ folder for the gateway (default: an untrained export "
                   "of the default network, made here)")
    args = p.parse_args(argv)
    if not args.docs.is_dir():
        p.error(f"{args.docs} is not a folder: run from the checkout's root, or pass --docs DIR")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    command = "python scripts/benchmark_report.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])
                                                      if (argv if argv is not None else sys.argv[1:]) else "")
    parts, figures = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        policy = args.policy or untrained_export(Path(tmp))
        parts["gateway"], found = gateway_section(policy, args.docs)
        figures.update(found)
    parts["split"], found = split_section(args.split_iterations)
    figures.update(found)
    parts["scaling"], found = scaling_section(args.num_envs, args.docs)
    figures.update(found)
    parts["phases"] = phases_section()
    write_page(args.docs / "benchmarks.md", parts, figures, command)
    print(f"wrote {args.docs / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
