"""Gateway soak: good clients at the control rate among hostile ones, for minutes, against a real server process.

``python scripts/benchmark_gateway.py --policy .../exported --soak`` (docs/benchmarks_history.md). One measured good
client sends an observation every control period with a 20 ms deadline and records, by its own clock, every
round trip, every reply that came after its deadline and whether the server had flagged it, and every
failure. Other good clients do the same unmeasured; the hostile ones (``KINDS``) flood, churn identities,
send garbage, oversized frames and long envelopes, NaN and huge observations, wrong admin tokens, claim
routing ids, and never read. The server's RSS is sampled every second. Every loop is bounded in time.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import socket
import struct
import sys
import time
from typing import Any, Callable

import msgpack
import numpy as np
import zmq

from roarm_lab.gateway.client import GatewayClient, GatewayError, GatewayTimeout
from roarm_lab.gateway.protocol import PROTOCOL_VERSION, encode, pack_array

KINDS = ("flood", "churn", "garbage", "oversize", "envelope", "nan", "admin", "thief", "stats", "deaf")
"""The hostile clients, dealt round-robin: what each one does is in ``_Hostile.act``."""


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class _Hostile:
    """One hostile client: a socket (or a stream of them) and one action per turn."""

    def __init__(self, ctx: zmq.Context, endpoint: str, kind: str, obs_size: int, rng: np.random.Generator):
        self.ctx, self.endpoint, self.kind, self.rng = ctx, endpoint, kind, rng
        self.obs_size = obs_size
        self.sock = self._socket()
        self.session = self._hello() if kind in ("flood", "nan", "admin", "deaf") else None
        self.seq = 0
        self.last_big = 0.0

    def _socket(self, identity: bytes | None = None) -> zmq.Socket:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 64)
        if identity is not None:
            sock.setsockopt(zmq.ROUTING_ID, identity)
        sock.connect(self.endpoint)
        return sock

    def _hello(self) -> bytes | None:
        self.sock.send(encode({"type": "hello", "protocol_version": PROTOCOL_VERSION, "client": self.kind}))
        if not self.sock.poll(2000):
            return None
        return msgpack.unpackb(self.sock.recv(), raw=False).get("session")

    def _drain(self) -> None:
        if self.kind == "deaf":
            return  # never reads: its replies pile up until the server's send queue for it is full
        while self.sock.poll(0):
            self.sock.recv_multipart()

    def _infer(self, obs: np.ndarray) -> None:
        self.seq += 1
        self.sock.send(encode({"type": "infer", "seq": self.seq, "obs": pack_array(obs), "session": self.session}),
                       zmq.NOBLOCK)

    def act(self) -> None:
        kind, rng = self.kind, self.rng
        try:
            if kind == "flood":  # as fast as the in-flight limit lets it
                for _ in range(8):
                    self._infer(rng.normal(size=self.obs_size).astype(np.float32) * 0.1)
            elif kind == "deaf":
                self._infer(np.zeros(self.obs_size, np.float32))
            elif kind == "nan":
                self._infer(np.full(self.obs_size, 3.4e38 if rng.random() < 0.5 else np.nan, np.float32))
            elif kind == "churn":  # a new identity (and session) every turn
                self.sock.close(0)
                self.sock = self._socket()
                self.sock.send(encode({"type": "hello", "protocol_version": PROTOCOL_VERSION, "client": "x" * 64}))
            elif kind == "garbage":
                self.sock.send(rng.bytes(int(rng.integers(1, 512))))
                self.sock.send(encode({"type": "infer", "seq": 1, "obs": {"dtype": "<f4", "shape": [10**6],
                                                                          "data": b""}}))
            elif kind == "oversize":
                self.sock.send(b"\x00" * 70_000)  # refused with too_large
                if time.monotonic() - self.last_big > 5.0:  # a 40 MB frame now and then: the peer is dropped
                    self.last_big = time.monotonic()
                    self.sock.send(b"\x00" * (40 << 20))
            elif kind == "envelope":
                self.sock.send_multipart([b"e" * 60_000] * 8 + [encode({"type": "ping"})])
            elif kind == "admin":
                self.sock.send(encode({"type": "reload", "path": "/tmp", "token": rng.bytes(32).hex(),
                                       "session": self.session}))
            elif kind == "thief":  # claims a random id, or the one libzmq would generate next when unseeded
                self.sock.close(0)
                ident = (b"\0" + struct.pack(">I", 0x6B8B4567 + int(rng.integers(0, 64))) if rng.random() < 0.5
                         else rng.bytes(5))
                self.sock = self._socket(ident)
                self.sock.send(encode({"type": "infer", "seq": 1, "obs": pack_array(np.zeros(self.obs_size))}))
            elif kind == "stats":
                self.sock.send(encode({"type": "stats"}))
        except zmq.Again:
            pass
        self._drain()


def _hostile_worker(endpoint: str, kinds: list[str], obs_size: int, seconds: float, seed: int, out: mp.Queue) -> None:
    ctx = zmq.Context()
    rng = np.random.default_rng(seed)
    clients = [_Hostile(ctx, endpoint, kind, obs_size, rng) for kind in kinds]
    turns, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for client in clients:
            client.act()
        turns += 1
        time.sleep(0.002)  # bounded load: the machine is shared
    for client in clients:
        client.sock.close(0)
    ctx.term()
    out.put(("hostile", {"turns": turns, "kinds": kinds}))


def _good_worker(endpoint: str, obs_size: int, period_s: float, deadline_ms: float, seconds: float, measured: bool,
                 out: mp.Queue) -> None:
    """A well-behaved client at the control rate; the measured one reports everything it saw."""
    rtts, late, late_server_flagged, flagged, failures, gaps = [], 0, 0, 0, {}, []
    rng = np.random.default_rng(0)
    name = "soak-measured" if measured else "soak-good"
    with GatewayClient(endpoint, timeout_ms=1000, retries=2, name=name) as client:
        last_ok = time.monotonic()
        next_t, end = time.monotonic(), time.monotonic() + seconds
        while time.monotonic() < end:
            obs = rng.normal(size=obs_size).astype(np.float32) * 0.1
            try:
                reply = client.infer(obs, deadline_ms=deadline_ms)
            except (GatewayError, GatewayTimeout) as err:
                key = getattr(err, "code", "timeout")
                failures[key] = failures.get(key, 0) + 1
            else:
                now = time.monotonic()
                rtt_ms = client.last_rtt_ms  # send to receipt, by this client's clock
                rtts.append(rtt_ms)
                miss = reply["flags"]["deadline_miss"]
                flagged += miss
                if rtt_ms > deadline_ms:
                    late += 1
                    late_server_flagged += miss and not reply["flags"].get("late_reply", False)
                if not np.isfinite(reply["target"]).all():
                    failures["non_finite_target"] = failures.get("non_finite_target", 0) + 1
                gaps.append(now - last_ok)
                last_ok = now
            next_t += period_s
            time.sleep(max(0.0, next_t - time.monotonic()))
        stats = client.stats() if measured else {}
        late_client_flagged, reconnects = client.late_replies, client.reconnects
    mine = stats.get("session", {})
    if not measured:
        out.put(("good", {}))
        return
    arr = np.array(rtts) if rtts else np.zeros(1)
    out.put(("measured", {
        "requests": len(rtts) + sum(failures.values()), "answered": len(rtts), "failures": failures,
        "rtt_ms": {f"p{p}": float(np.percentile(arr, p)) for p in (50, 90, 99)} | {"max": float(arr.max())},
        "late_replies": late, "late_flagged_by_server": late_server_flagged,
        "late_flagged_by_client_only": late_client_flagged, "flagged_deadline_miss": flagged,
        "late_unflagged": late - late_server_flagged - late_client_flagged,
        "reconnects": reconnects,
        "longest_gap_between_answers_s": float(max(gaps)) if gaps else None,
        "server_counted_for_this_client": {k: mine.get(k) for k in ("requests", "deadline_misses", "errors")},
        "server": {k: stats.get(k) for k in ("infers", "deadline_misses", "sessions", "errors", "late_results_dropped")},
    }))


def run_soak(endpoint: str, server_pid: int, obs_size: int, seconds: float = 300.0, clients: int = 50,
             good: int = 5, period_s: float = 1 / 30, deadline_ms: float = 20.0,
             kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    """``clients`` clients for ``seconds``: ``good`` of them well-behaved (one measured), the rest hostile."""
    hostile = [kinds[i % len(kinds)] for i in range(clients - good)]
    groups = [hostile[i::3] for i in range(3)]  # three processes share the hostile clients
    out: mp.Queue = mp.Queue()
    rss = [rss_mb(server_pid)]
    procs = [mp.Process(target=_good_worker, args=(endpoint, obs_size, period_s, deadline_ms, seconds, i == 0, out))
             for i in range(good)]
    procs += [mp.Process(target=_hostile_worker, args=(endpoint, g, obs_size, seconds, 100 + i, out))
              for i, g in enumerate(groups) if g]
    for proc in procs:
        proc.start()
    end = time.monotonic() + seconds + 5
    while time.monotonic() < end and any(p.is_alive() for p in procs):
        time.sleep(1.0)
        rss.append(rss_mb(server_pid))
    results = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
    measured = next(r for kind, r in results if kind == "measured")
    turns = sum(r["turns"] for kind, r in results if kind == "hostile")

    return {"seconds": seconds, "clients": clients, "good_clients": good, "hostile_kinds": sorted(set(hostile)),
            "hostile_turns": turns, "measured_client": measured,
            "server_rss_mb": {"start": rss[0], "max": max(rss), "end": rss[-1],
                              "each_minute": [round(v, 1) for v in rss[60::60]]}}


def soak_main(policy: str, seconds: float, clients: int, rss_bound_mb: float,
              start_gateway: Callable[[str, int], Any]) -> int:
    """Start a gateway process, soak it, print the figures as JSON; exit 1 if a property failed."""
    from roarm_lab.policy.spec import load_spec

    meta, _ = load_spec(policy)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gateway = start_gateway(policy, port)
    try:
        time.sleep(1.0)
        result = run_soak(f"tcp://127.0.0.1:{port}", gateway.pid, int(meta["observation"]["size"]), seconds, clients,
                          period_s=float(meta["control_period_s"]))
    finally:
        gateway.terminate()
        gateway.wait(10)
    m, rss = result["measured_client"], result["server_rss_mb"]
    result["checks"] = checks = {
        "every late reply was flagged deadline_miss": m["late_unflagged"] == 0,
        "no good request failed": not m["failures"],
        "answered throughout (no gap over 1 s)": (m["longest_gap_between_answers_s"] or 0.0) < 1.0,
        f"server RSS grew less than {rss_bound_mb:.0f} MB": rss["max"] - rss["start"] < rss_bound_mb,
    }
    print(json.dumps(result, indent=1))
    sys.stdout.flush()
    return 0 if all(checks.values()) else 1
