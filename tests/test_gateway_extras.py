"""Issue 27's gateway extras over real ZeroMQ sockets, serving the project's own export: joint names and scales in
infer replies on request, the hash-mismatch forensic file, the latency benchmark's CSV, ``roarm-gateway analyze``."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from roarm_lab.gateway.benchmark import CSV_COLUMNS, DEADLINE_REQUESTS
from roarm_lab.gateway.client import GatewayClient
from roarm_lab.gateway.forensics import FILE_NAME
from roarm_lab.gateway.protocol import PROTOCOL_VERSION, encode, pack_array
from roarm_lab.gateway.server import GatewayConfig, GatewayServer
from roarm_lab.policy import LoadedPolicy

REPO = Path(__file__).resolve().parents[1]
OBS_SIZE = 29
PLAIN_REPLY_KEYS = ["ok", "type", "id", "seq", "action", "target", "timings", "flags"]
PLAIN_FLAG_KEYS = ["deadline_miss", "clipped", "any_clipped", "hash_mismatch"]


@pytest.fixture
def served(export_dir, tmp_path):
    """Gateways on a free port with an event log in tmp_path; a generous deadline unless a test plants a miss."""
    made = []

    def make(**cfg) -> GatewayServer:
        config = dict(bind="tcp://127.0.0.1:0", deadline_ms=5000, event_log=str(tmp_path / "events.jsonl"))
        config.update(cfg)
        srv = GatewayServer(LoadedPolicy.load(export_dir), GatewayConfig(**config)).start()
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


def _obs(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=OBS_SIZE).astype(np.float32) * 0.1


def _policy_json(export_dir: Path) -> dict:
    return json.loads((export_dir / "policy.json").read_text())


def _raw_session(endpoint: str, **hello) -> tuple[zmq.Socket, dict]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock, _ask(sock, {"type": "hello", "protocol_version": PROTOCOL_VERSION, **hello})


def _ask(sock: zmq.Socket, message: dict) -> dict:
    sock.send(encode(message))
    assert sock.poll(5000), "the server did not answer"
    return msgpack.unpackb(sock.recv(), raw=False)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------------- 1. joint names and scales
def test_infer_replies_carry_policy_json_joint_names_and_scales_only_when_asked(served, export_dir):
    act = _policy_json(export_dir)["action"]
    srv = served()
    plain_sock, plain_hello = _raw_session(srv.endpoint)
    asking_sock, asking_hello = _raw_session(srv.endpoint, want_joint_info=True)
    assert "joint_info" not in plain_hello and asking_hello["joint_info"] is True
    obs = pack_array(_obs(1))
    plain = _ask(plain_sock, {"type": "infer", "seq": 1, "obs": obs, "session": plain_hello["session"]})
    asking = _ask(asking_sock, {"type": "infer", "seq": 1, "obs": obs, "session": asking_hello["session"]})
    assert list(plain) == PLAIN_REPLY_KEYS and list(plain["flags"]) == PLAIN_FLAG_KEYS  # the default, as it was
    assert asking["joint_names"] == act["joint_names"] and asking["action_scale"] == act["scale"]
    assert [k for k in asking if k not in ("joint_names", "action_scale")] == PLAIN_REPLY_KEYS
    assert asking["target"] == plain["target"] and asking["action"] == plain["action"]  # the same answer otherwise
    # a planted miss (10 us deadline: the watchdog's hold, or the policy's answer flagged late) carries them as well
    held = _ask(asking_sock, {"type": "infer", "seq": 2, "obs": obs, "session": asking_hello["session"],
                              "deadline_ms": 0.01})
    assert held["flags"]["deadline_miss"] is True and held["joint_names"] == act["joint_names"]
    plain_sock.close()
    asking_sock.close()
    with GatewayClient(srv.endpoint, want_joint_info=True) as client:
        reply = client.infer(_obs(2))
    assert reply["joint_names"] == act["joint_names"] and len(reply["action_scale"]) == reply["target"].size
    with GatewayClient(srv.endpoint) as client:
        assert "joint_names" not in client.infer(_obs(2))


def test_a_malformed_joint_info_flag_is_a_one_line_bad_request(served):
    sock, reply = _raw_session(served().endpoint, want_joint_info="yes")
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
    assert "want_joint_info must be true or false" in reply["error"]["message"]
    assert "\n" not in reply["error"]["message"] and "Traceback" not in reply["error"]["message"]
    sock.close()


# ---------------------------------------------------------------------------- 2. the forensic file
def test_a_mismatching_hash_writes_exactly_one_forensic_line_with_its_fields(served, export_dir, tmp_path):
    srv = served()
    forensic = tmp_path / FILE_NAME
    with GatewayClient(srv.endpoint, name="right-arm", config_hash=srv.policy.config_hash) as client:
        client.infer(_obs(3))
    assert not forensic.exists()  # a matching hash is no evidence of anything
    with GatewayClient(srv.endpoint, name="drifted-arm", config_hash="not-the-export") as client:
        reply = client.infer(_obs(4))
    assert reply["flags"]["hash_mismatch"] is True
    (line,) = _lines(forensic)
    assert line["event"] == "hash_mismatch" and line["name"] == "drifted-arm" and line["client"].startswith("s")
    assert line["expected_hash"] == _policy_json(export_dir)["config_hash"] and line["client_hash"] == "not-the-export"
    assert line["id"] == reply["id"] and line["seq"] == reply["seq"] and line["time"].endswith("Z") and line["ts"] > 0


def test_a_flood_of_mismatches_is_bounded_per_client_then_counted(served, tmp_path):
    srv = served(hash_mismatch_lines_per_client=3)
    with GatewayClient(srv.endpoint, name="flooder", config_hash="wrong") as client:
        for i in range(10):
            client.infer(_obs(i))
    srv.stop()  # ends the window: the held-back count is written
    lines = _lines(tmp_path / FILE_NAME)
    assert [line["event"] for line in lines] == ["hash_mismatch"] * 3 + ["suppressed"]
    assert lines[-1]["count"] == 7 and lines[-1]["by_client"] == {lines[0]["client"]: 7}


# ---------------------------------------------------------------------------- 3. the benchmark's CSV
def test_benchmark_csv_has_a_row_per_request_with_the_measured_columns(export_dir, tmp_path):
    out = tmp_path / "results" / "latency.csv"
    requests = 20
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark_gateway.py"), "--policy", str(export_dir),
                          "--requests", str(requests), "--order-requests", "20", "--seconds", "0.3", "--csv", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    with out.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    phases = {}
    for row in rows:
        phases.setdefault(row["phase"], []).append(row)
    assert {k: len(v) for k, v in phases.items()} == {
        "gateway_1khz": requests, "req_rep_echo_1khz": requests, "router_echo_1khz": requests,
        "deadline_5ms_inference_30ms": DEADLINE_REQUESTS}
    assert f"wrote {len(rows)} rows to {out}" in run.stdout
    for row in phases["gateway_1khz"] + phases["deadline_5ms_inference_30ms"]:
        assert float(row["round_trip_us"]) > 0 and float(row["total_us"]) >= 0 and row["deadline_miss"] in ("0", "1")
    assert all(row["total_us"] == "" and float(row["round_trip_us"]) > 0 for row in phases["router_echo_1khz"])
    assert [r["request"] for r in phases["gateway_1khz"]] == [str(i) for i in range(requests)]
    assert sorted(p.name for p in out.parent.iterdir()) == ["latency.csv"]  # atomic: no temporary file left


def test_benchmark_csv_refuses_a_folder_before_starting_anything(export_dir, tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark_gateway.py"), "--policy", str(export_dir),
                          "--csv", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 2 and "--csv takes a file path" in run.stderr and "Traceback" not in run.stderr


# ---------------------------------------------------------------------------- 4. analyze
def test_analyze_reports_requests_a_planted_miss_and_a_planted_hash_change(served, tmp_path, capsys):
    from roarm_lab.gateway.cli import main as gateway_main

    srv = served()
    policy_hash = srv.policy.config_hash
    with GatewayClient(srv.endpoint, name="arm-a", config_hash=policy_hash) as client:
        for i in range(20):
            assert not client.infer(_obs(i))["flags"]["deadline_miss"]
        planted = client.infer(_obs(20), deadline_ms=0.01)  # its deadline has passed when the server reads it
        assert planted["flags"]["deadline_miss"] is True
        client.config_hash = "drifted-config"  # the planted drift: the same client, another configuration
        for i in range(3):
            client.infer(_obs(30 + i))
    srv.stop()
    events = tmp_path / "events.jsonl"
    with events.open("a") as handle:  # what a cut-off or foreign line looks like: skipped and counted
        handle.write('not json\n[1, 2]\n{"event": "hello"}\n')

    run = subprocess.run([sys.executable, str(REPO / "scripts" / "gateway.py"), "analyze", str(events), "--png",
                          str(tmp_path / "latency.png")], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    text = run.stdout
    assert "requests: 24 infer replies" in text and "1 deadline misses" in text and "3 malformed lines skipped" in text
    assert f"seq {planted['seq']}" in text
    assert f"(arm-a) {policy_hash[:64]} -> drifted-config" in text
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert gateway_main(["analyze", str(events), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["requests"] == 24 and report["deadline_misses"] == 1 and report["malformed_lines"] == 3
    assert [m["seq"] for m in report["deadline_miss_events"]] == [planted["seq"]]
    (change,) = report["hash_changes"]
    assert change["from"] == policy_hash[:64] and change["to"] == "drifted-config" and change["name"] == "arm-a"
    hashes = report["clients"][change["client"]]["hashes"]
    assert hashes[policy_hash[:64]]["matches"] is True and hashes["drifted-config"]["mismatch_events"] == 3


def test_analyze_of_a_missing_file_is_a_one_line_error(tmp_path, capsys):
    from roarm_lab.gateway.cli import main as gateway_main

    assert gateway_main(["analyze", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a file" in err and "--event-log" in err
