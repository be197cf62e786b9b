"""Gateway benchmark: the server in its own process, clients in others, a REQ/REP echo as the floor.

1. one client at 1 kHz: round-trip p50/p99 (gateway and echo, and their ratio);
2. four client processes as fast as they can: requests/s;
3. 100k requests: replies lost or out of order (the client checks every sequence number);
4. deadline misses: a server whose inference takes 30 ms, deadline 5 ms: what a miss costs the client.

``--soak``: instead, minutes of good and hostile clients against one server (``roarm_lab.gateway.soak``).
``--clients 1 4 16 64``: instead, latency against the number of client processes, each paced at
``--client-rate`` Hz, with ``--plot PNG`` for the curve.
``--csv PATH``: also every latency sample the run keeps, one row per request (columns: ``CSV_COLUMNS``).
"""

from __future__ import annotations

import argparse
import csv
import io
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time

import numpy as np
import zmq

from roarm_lab.utils.figures import save_png
from roarm_lab.gateway.client import GatewayClient
from roarm_lab.policy import LoadedPolicy
from roarm_lab.utils.io import atomic_write_text

CSV_COLUMNS = ("phase", "clients", "request", "round_trip_us", "queue_us", "inference_us", "total_us", "deadline_miss")
"""One row per request: the client's round trip and, for the gateway, the server's timings and its miss flag."""
DEADLINE_REQUESTS = 50
"""Requests of the deadline-miss test (30 ms inference, 5 ms deadline)."""


def sample_rows(phase: str, round_trip_us: np.ndarray, replies: list[dict] | None = None,
                clients: int = 1) -> list[dict]:
    """CSV rows of one phase: a row per request, server columns left empty where there is no gateway reply."""
    rows = []
    for i, rtt in enumerate(round_trip_us):
        row = {"phase": phase, "clients": clients, "request": i, "round_trip_us": f"{float(rtt):.1f}"}
        if replies is not None:
            timings = replies[i]["timings"]
            row.update({k: f"{float(timings[k]):.1f}" for k in ("queue_us", "inference_us", "total_us")})
            row["deadline_miss"] = int(bool(replies[i]["flags"]["deadline_miss"]))
        rows.append(row)
    return rows


def write_csv(path: str, rows: list[dict]) -> None:
    """All rows at once, atomically: a reader never sees half a file, an interrupted run leaves the old one."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gateway(policy: str, port: int, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "roarm_lab.gateway.cli", "--policy", policy, "--bind",
                             f"tcp://127.0.0.1:{port}", "--event-log", "", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc.stdout.readline()  # "serving ..." once it is bound
    return proc


def _echo_server(port: int, kind: int) -> None:
    """REP: the plain transport floor. ROUTER: the gateway's own socket type, echoing whole envelopes."""
    ctx = zmq.Context()
    sock = ctx.socket(kind)
    sock.bind(f"tcp://127.0.0.1:{port}")
    while True:
        frames = sock.recv_multipart()
        sock.send_multipart(frames)
        if frames[-1] == b"quit":
            return


def _echo_latency(kind: int, requests: int) -> np.ndarray:
    port = _port()
    server = mp.Process(target=_echo_server, args=(port, kind), daemon=True)
    server.start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ if kind == zmq.REP else zmq.DEALER)
    sock.connect(f"tcp://127.0.0.1:{port}")
    payload = os.urandom(150)

    def ask(_: int) -> None:
        sock.send(payload)
        sock.recv()

    _paced(ask, 500, 1000.0)
    lat = _paced(ask, requests, 1000.0)
    sock.send(b"quit")
    sock.recv()
    sock.close(0)
    ctx.term()
    server.join(5)
    return lat


def _paced(fn, n: int, rate_hz: float, spin: bool = True) -> np.ndarray:
    """Call ``fn`` ``n`` times at ``rate_hz``; per-call latency in us. ``spin``: busy-wait for the next slot (one
    client: the most exact timing), else sleep (many clients: spinning ones would starve the server's cores)."""
    period = 1.0 / rate_hz
    lat = np.empty(n)
    next_t = time.perf_counter()
    for i in range(n):
        if not spin:
            time.sleep(max(0.0, next_t - time.perf_counter()))
        while time.perf_counter() < next_t:
            pass
        t = time.perf_counter()
        fn(i)
        lat[i] = time.perf_counter() - t
        next_t += period
    return lat * 1e6


def _obs(size: int) -> np.ndarray:
    return np.zeros(size, np.float32)


def _throughput_worker(endpoint: str, size: int, seconds: float, out: mp.Queue) -> None:
    with GatewayClient(endpoint, timeout_ms=2000) as client:
        obs, n, end = _obs(size), 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            client.infer(obs)
            n += 1
    out.put(n)


def _paced_worker(endpoint: str, size: int, rate_hz: float, seconds: float, start_at: float, out: mp.Queue,
                  echo: bool = False) -> None:
    """One client: hello, then requests paced at ``rate_hz`` (sleeping between them, as a control loop does) from
    ``start_at`` (a shared wall time) on. ``echo``: a bare DEALER against the ROUTER echo instead (the floor)."""
    if echo:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.connect(endpoint)
        payload = os.urandom(150)

        def ask() -> None:
            sock.send(payload)
            sock.recv()
    else:
        client = GatewayClient(endpoint, timeout_ms=5000).connect()
        obs = _obs(size)

        def ask() -> None:
            client.infer(obs)
    ask()
    while time.time() < start_at:
        time.sleep(0.001)
    lat = _paced(lambda i: ask(), int(seconds * rate_hz), rate_hz, spin=False)
    if echo:
        sock.close(0)
        ctx.term()
    else:
        client.close()
    out.put(lat.tolist())


def client_sweep(endpoint: str, size: int, counts: list[int], rate_hz: float, seconds: float,
                 echo: bool = False, samples: list[dict] | None = None) -> list[dict]:
    """p50/p99 round trip for each number of paced client processes (``echo``: against the ROUTER echo);
    ``samples``: every round trip is also added to it as a CSV row."""
    rows = []
    for k in counts:
        out: mp.Queue = mp.Queue()
        start_at = time.time() + 2.0 + 0.05 * k  # every client connected and warmed before the first paced request
        procs = [mp.Process(target=_paced_worker, args=(endpoint, size, rate_hz, seconds, start_at, out, echo))
                 for _ in range(k)]
        for proc in procs:
            proc.start()
        lat = np.concatenate([np.asarray(out.get(), float) for _ in procs])
        for proc in procs:
            proc.join()
        if samples is not None:
            samples += sample_rows("router_echo_paced" if echo else "gateway_paced", lat, clients=k)
        p50, p99 = np.percentile(lat, [50, 99])
        rows.append({"clients": k, "p50_us": float(p50), "p99_us": float(p99), "offered_per_s": k * rate_hz,
                     "requests": int(lat.size)})
        print(f"{'ROUTER echo' if echo else 'gateway':>11}, {k:>3} clients x {rate_hz:.0f} Hz: p50 {p50:,.0f} us  "
              f"p99 {p99:,.0f} us  ({lat.size} requests)", flush=True)
    return rows


def plot_clients(rows: list[dict], echo_rows: list[dict], png: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    k = [r["clients"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(k, [r["p50_us"] for r in rows], "o-", color="C0", label="gateway p50")
    ax.plot(k, [r["p99_us"] for r in rows], "s--", color="C0", label="gateway p99")
    ax.plot(k, [r["p50_us"] for r in echo_rows], "o-", color="0.5", label="ROUTER echo p50 (same pacing)")
    ax.plot(k, [r["p99_us"] for r in echo_rows], "s--", color="0.5", label="ROUTER echo p99")
    ax.axhline(1000, color="C3", linestyle=":", linewidth=0.8, label="1 ms")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(k, [str(c) for c in k])
    ax.set_xlabel(f"client processes, each paced at {rows[0]['offered_per_s'] / rows[0]['clients']:.0f} Hz")
    ax.set_ylabel("round trip (us)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Policy gateway round trip against clients (2 CPU cores, loopback)", fontsize=10)
    fig.tight_layout()
    save_png(fig, png)


def inference_costs(export_dir: str, calls: int = 20000) -> dict[str, float]:
    """Microseconds per call for one observation: ONNX Runtime, the graph in numpy, TorchScript, the numba kernel.
    The gateway's choice (``LoadedPolicy.inference``) is the kernel where the graph allows it (docs/gateway.md)."""
    import onnx

    from roarm_lab.policy.compiled import compile_mlp, mlp_weights, numpy_mlp
    from roarm_lab.policy.loader import _onnx_runner, _torchscript_runner

    loaded = LoadedPolicy.load(export_dir)
    folder = loaded.path
    data = (folder / "policy.onnx").read_bytes()
    weights = mlp_weights(onnx.load_model_from_string(data))
    runners = {"onnxruntime": _onnx_runner(data, "policy.onnx")}  # the loader's own session (one thread)
    if weights is not None:
        runners["numpy"] = numpy_mlp(weights)
    if (folder / "policy.pt").is_file():
        runners["torchscript"] = _torchscript_runner((folder / "policy.pt").read_bytes())
    kernel = compile_mlp(weights) if weights is not None else None
    if kernel is not None:
        runners["numba-mlp"] = kernel
    obs = np.zeros((1, loaded.obs_size), np.float32)
    costs = {}
    for key, run in runners.items():
        for _ in range(calls // 10):
            run(obs)
        rounds = []
        for _ in range(5):  # the median of five rounds: this machine is shared
            start = time.perf_counter()
            for _ in range(calls // 5):
                run(obs)
            rounds.append((time.perf_counter() - start) / (calls // 5) * 1e6)
        costs[key] = float(np.median(rounds))
    return costs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True)
    p.add_argument("--requests", type=int, default=5000, help="paced requests at 1 kHz")
    p.add_argument("--order-requests", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=5.0, help="throughput test duration")
    p.add_argument("--soak", action="store_true", help="run the soak instead: good and hostile clients for minutes")
    p.add_argument("--soak-seconds", type=float, default=300.0)
    p.add_argument("--soak-clients", type=int, default=50)
    p.add_argument("--rss-bound-mb", type=float, default=60.0, help="soak: the server's RSS may grow less than this")
    p.add_argument("--clients", type=int, nargs="+", help="instead: latency against this many paced client processes")
    p.add_argument("--client-rate", type=float, default=100.0, help="--clients: requests/s of each client")
    p.add_argument("--client-seconds", type=float, default=5.0)
    p.add_argument("--plot", help="--clients: write the curve to this PNG")
    p.add_argument("--csv", help="also write every latency sample to this CSV file, one row per request")
    p.add_argument("--inference-only", action="store_true",
                   help="instead: microseconds per call of each inference candidate for one observation")
    args = p.parse_args(argv)
    if args.csv and (args.soak or os.path.isdir(args.csv)):
        p.error("--csv takes a file path (such as results/gateway_latency.csv) and applies to the latency runs, "
                "not to --soak")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.inference_only:
        costs = inference_costs(args.policy)
        print("inference, one observation: " + ", ".join(f"{k} {v:.1f} us" for k, v in costs.items()) +
              f" (the gateway runs {LoadedPolicy.load(args.policy, compiled=True).inference})")
        return 0
    if args.soak:
        from roarm_lab.gateway.soak import soak_main

        return soak_main(args.policy, args.soak_seconds, args.soak_clients, args.rss_bound_mb, _start_gateway)

    size = int(LoadedPolicy.load(args.policy).meta["observation"]["size"])
    port = _port()
    gateway = _start_gateway(args.policy, port)
    endpoint = f"tcp://127.0.0.1:{port}"
    samples: list[dict] = []
    if args.clients:
        try:
            rows = client_sweep(endpoint, size, args.clients, args.client_rate, args.client_seconds, samples=samples)
        finally:
            gateway.terminate()
            gateway.wait(10)
        echo_port = _port()
        echo = mp.Process(target=_echo_server, args=(echo_port, zmq.ROUTER), daemon=True)
        echo.start()
        echo_rows = client_sweep(f"tcp://127.0.0.1:{echo_port}", size, args.clients, args.client_rate,
                                 args.client_seconds, echo=True, samples=samples)
        echo.terminate()
        if args.plot:
            plot_clients(rows, echo_rows, args.plot)
            print(f"wrote {args.plot}")
        _maybe_write_csv(args.csv, samples)
        return 0
    results = run_benchmark(args.policy, endpoint, gateway, size, args.requests, args.seconds, args.order_requests,
                            samples)
    _maybe_write_csv(args.csv, samples)
    return 0 if results["misordered"] == 0 else 1


def run_benchmark(policy: str, endpoint: str, gateway: subprocess.Popen, size: int, requests: int, seconds: float,
                  order_requests: int, samples: list[dict]) -> dict[str, float]:
    """Phases 1 to 4 against the started ``gateway`` (terminated here); the figures as a dict, also printed."""
    out_figures: dict[str, float] = {}
    try:
        # 1. latency at 1 kHz
        with GatewayClient(endpoint) as client:
            obs = _obs(size)
            _paced(lambda i: client.infer(obs), 500, 1000.0)  # warm-up
            replies: list[dict] = []
            lat = _paced(lambda i: replies.append(client.infer(obs)), requests, 1000.0)
        echo_lat = _echo_latency(zmq.REP, requests)
        router_lat = _echo_latency(zmq.ROUTER, requests)
        samples += sample_rows("gateway_1khz", lat, replies) + sample_rows("req_rep_echo_1khz", echo_lat)
        samples += sample_rows("router_echo_1khz", router_lat)
        g50, g99 = np.percentile(lat, [50, 99])
        e50, e99 = np.percentile(echo_lat, [50, 99])
        r50, r99 = np.percentile(router_lat, [50, 99])
        print(f"1 client @ 1 kHz, {requests} requests: gateway p50 {g50:.0f} us p99 {g99:.0f} us | "
              f"REQ/REP echo p50 {e50:.0f} us p99 {e99:.0f} us (ratio {g50 / e50:.2f} / {g99 / e99:.2f}) | "
              f"ROUTER echo p50 {r50:.0f} us p99 {r99:.0f} us (ratio {g50 / r50:.2f} / {g99 / r99:.2f}; issue 30's "
              f"target: p50 ratio <= 1.5)")
        out_figures.update(gateway_p50_us=g50, gateway_p99_us=g99, req_rep_p50_us=e50, req_rep_p99_us=e99,
                           router_p50_us=r50, router_p99_us=r99, p50_over_router=g50 / r50)

        # 2. throughput with 4 client processes
        out: mp.Queue = mp.Queue()
        procs = [mp.Process(target=_throughput_worker, args=(endpoint, size, seconds, out)) for _ in range(4)]
        for proc in procs:
            proc.start()
        total = sum(out.get() for _ in procs)
        for proc in procs:
            proc.join()
        print(f"4 clients, {seconds:.0f} s: {total / seconds:,.0f} requests/s (issue 30's target: >= 10,000)")
        out_figures["four_clients_per_s"] = total / seconds

        # 3. lost or misordered replies
        with GatewayClient(endpoint, timeout_ms=2000) as client:
            obs, last, bad = _obs(size), 0, 0
            for _ in range(order_requests):
                seq = client.infer(obs)["seq"]
                bad += seq <= last
                last = seq
            print(f"{order_requests} requests: {bad} misordered, {client.stale_replies} stale dropped, "
                  f"{client.reconnects} reconnects (a lost reply would raise)")
            out_figures["misordered"] = bad
    finally:
        gateway.terminate()
        gateway.wait(10)

    # 4. deadline misses
    port = _port()
    slow = _start_gateway(policy, port, "--debug-inference-delay-ms", "30", "--deadline-ms", "5")
    try:
        with GatewayClient(f"tcp://127.0.0.1:{port}", timeout_ms=2000) as client:
            costs, replies = [], []
            for _ in range(DEADLINE_REQUESTS):
                t = time.perf_counter()
                replies.append(client.infer(_obs(size), deadline_ms=5))
                costs.append((time.perf_counter() - t) * 1e3)
                time.sleep(0.035)  # let the slow inference finish
            flagged = sum(bool(r["flags"]["deadline_miss"]) for r in replies)
            print(f"deadline 5 ms, inference 30 ms: {flagged}/{DEADLINE_REQUESTS} flagged deadline_miss, client cost "
                  f"p50 {np.percentile(costs, 50):.2f} ms max {max(costs):.2f} ms (deadline + 1 ms = 6 ms)")
            samples += sample_rows("deadline_5ms_inference_30ms", np.asarray(costs) * 1e3, replies)
            out_figures.update(deadline_flagged=flagged, deadline_cost_p50_ms=float(np.percentile(costs, 50)))
    finally:
        slow.terminate()
        slow.wait(10)
    return out_figures


def _maybe_write_csv(path: str | None, samples: list[dict]) -> None:
    if path:
        write_csv(path, samples)
        print(f"wrote {len(samples)} rows to {path}")
