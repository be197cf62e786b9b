"""The policy gateway over real ZeroMQ sockets, serving a policy exported by the project's own exporter."""

from __future__ import annotations

import gzip
import json
import threading
import time
import urllib.request

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roarm_lab.gateway.client import GatewayClient, GatewayError, GatewaySpecError, GatewayTimeout
from roarm_lab.policy import LoadedPolicy
from roarm_lab.gateway.protocol import PROTOCOL_VERSION, encode, pack_array
from roarm_lab.gateway.server import GatewayConfig, GatewayServer
from roarm_lab.gateway.stats import LatencyStats

TASK = "RoArm-Reach-v0"
OBS_SIZE = 29  # RoArm-Reach-v0's policy observation (test_runtime holds the layout)


@pytest.fixture
def server(export_dir, tmp_path):
    srv = GatewayServer(LoadedPolicy.load(export_dir), GatewayConfig(bind="tcp://127.0.0.1:0", deadline_ms=200,
                                                                     event_log=str(tmp_path / "events.jsonl"))).start()
    yield srv
    srv.stop()


def _obs(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=OBS_SIZE).astype(np.float32) * 0.1


def test_hello_infer_and_relative_targets_follow_policy_json(server, export_dir):
    policy = LoadedPolicy.load(export_dir)
    meta = policy.meta
    with GatewayClient(server.endpoint, expected={"obs_size": OBS_SIZE, "action_size": 5, "task": TASK}) as client:
        assert client.spec["action"]["mode"] == "relative" and client.spec["config_hash"] == meta["config_hash"]
        obs = _obs(1)
        r1 = client.infer(obs)
        action = policy.infer(obs)
        np.testing.assert_allclose(r1["action"], action, atol=1e-6)
        measured = obs[:5] + np.array([meta["default_joint_pos"][j] for j in meta["action"]["joint_names"]])
        expected = np.clip(measured + np.array(meta["action"]["scale"]) * action, meta["action"]["lower"],
                           meta["action"]["upper"])
        np.testing.assert_allclose(r1["target"], expected, atol=1e-5)
        r2 = client.infer(obs)  # relative: integrates from the previous target
        np.testing.assert_allclose(r2["target"], np.clip(r1["target"] + np.array(meta["action"]["scale"]) * action,
                                                         meta["action"]["lower"], meta["action"]["upper"]), atol=1e-5)
        client.reset()
        np.testing.assert_allclose(client.infer(obs)["target"], expected, atol=1e-5)
        assert r2["seq"] > r1["seq"] and not r1["flags"]["deadline_miss"]


def test_named_observation_parts_equal_the_flat_vector(server, export_dir):
    terms = LoadedPolicy.load(export_dir).meta["observation"]["terms"]
    obs = _obs(2)
    with GatewayClient(server.endpoint) as client:
        flat = client.infer(obs)
        client.reset()
        named = client.infer({t["name"]: obs[t["start"]: t["stop"]] for t in terms})
    np.testing.assert_allclose(flat["target"], named["target"])


def test_clipping_is_flagged_per_joint(server):
    with GatewayClient(server.endpoint) as client:
        obs = _obs(3)
        obs[2] = 50.0  # the elbow is read far outside its box: the target clamps there
        reply = client.infer(obs)
    assert reply["flags"]["clipped"][2] and reply["flags"]["any_clipped"]
    assert reply["target"][2] == pytest.approx(2.73, abs=1e-5)


def test_spec_mismatch_fails_fast_with_a_readable_error(server):
    with pytest.raises(GatewaySpecError, match=f"obs_size: server has {OBS_SIZE}, expected 30"):
        GatewayClient(server.endpoint, expected={"obs_size": 30}).connect()


def _raw(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def _ask(sock: zmq.Socket, payload: bytes, timeout_ms: int = 2000) -> dict:
    sock.send(payload)
    assert sock.poll(timeout_ms), "the server did not answer"
    return msgpack.unpackb(sock.recv(), raw=False)


def _hello(sock: zmq.Socket) -> bytes:
    """Say hello on a raw socket; returns the session token every later request must carry."""
    reply = _ask(sock, encode({"type": "hello", "protocol_version": PROTOCOL_VERSION}))
    assert reply["ok"], reply
    return reply["session"]


@pytest.mark.parametrize("payload, code", [
    (b"\xc1\xff not msgpack", "bad_msgpack"),
    (encode({"type": "fly"}), "unknown_type"),
    (encode([1, 2, 3]), "bad_request"),
    (encode({"type": "hello", "protocol_version": 99}), "unsupported_version"),
    (encode({"type": "hello", "protocol_version": 1}), "unsupported_version"),
    (encode({"type": "infer", "seq": 1, "obs": pack_array(np.zeros(OBS_SIZE))}), "no_hello"),
    (b"\x00" * 70000, "too_large"),
])
def test_malformed_requests_get_coded_errors_and_the_server_keeps_serving(server, payload, code):
    sock = _raw(server.endpoint)
    reply = _ask(sock, payload)
    assert reply["ok"] is False and reply["error"]["code"] == code and reply["error"]["message"]
    assert "Traceback" not in reply["error"]["message"]
    assert _ask(sock, encode({"type": "ping"}))["type"] == "pong"
    sock.close()


@pytest.mark.parametrize("obs, code", [
    (pack_array(np.zeros(20)), "wrong_size"),
    ({**pack_array(np.zeros(OBS_SIZE)), "dtype": "<f8"}, "bad_array"),
    (pack_array(np.full(OBS_SIZE, np.nan)), "not_finite"),
    ({"dtype": "<f4", "shape": [OBS_SIZE], "data": b"123"}, "bad_array"),
    ({"joint_pos": pack_array(np.zeros(5))}, "wrong_size"),
])
def test_bad_observations_are_refused_with_their_code(server, obs, code):
    sock = _raw(server.endpoint)
    session = _hello(sock)
    reply = _ask(sock, encode({"type": "infer", "seq": 7, "obs": obs, "session": session}))
    assert reply["error"]["code"] == code and reply["seq"] == 7
    sock.close()


def test_slow_policy_gets_the_safe_action_and_ping_still_answers(export_dir, tmp_path):
    policy = LoadedPolicy.load(export_dir)
    fast = policy._run
    policy._run = lambda obs: (time.sleep(0.3), fast(obs))[1]  # a model that takes 300 ms
    srv = GatewayServer(policy, GatewayConfig(bind="tcp://127.0.0.1:0", deadline_ms=20,
                                              event_log=str(tmp_path / "ev.jsonl"))).start()
    try:
        with GatewayClient(srv.endpoint, timeout_ms=2000) as client:
            obs = _obs(4)
            reply = client.infer(obs, deadline_ms=20)
            assert reply["flags"]["deadline_miss"] is True
            measured = policy.measured_joint_pos(obs)
            np.testing.assert_allclose(reply["target"], measured, atol=1e-6)  # hold where the arm is
            assert reply["timings"]["total_us"] < 300_000
            assert client.ping(timeout_ms=200)["type"] == "pong"  # the loop answers while inference runs
            time.sleep(0.7)
            stats = client.stats()
        assert stats["deadline_misses"] >= 1 and stats["late_results_dropped"] >= 1
    finally:
        srv.stop()
    events = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert any(e["event"] == "deadline_miss" for e in events)


def test_config_hash_mismatch_is_flagged_and_logged(server, tmp_path):
    with GatewayClient(server.endpoint, config_hash="not-the-export") as client:
        reply = client.infer(_obs(5))
    assert reply["flags"]["hash_mismatch"] is True
    time.sleep(0.05)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    mismatch = [e for e in events if e["event"] == "hash_mismatch"]
    assert mismatch and mismatch[0]["client_hash"] == "not-the-export" and mismatch[0]["policy_hash"]


@pytest.fixture
def admin_server(export_dir, tmp_path):
    """A server with admin requests on (a token file) that may reload exports beside the fixture's."""
    from roarm_lab.gateway.admin import new_admin_token

    token_file = new_admin_token(tmp_path / "admin.token")
    srv = GatewayServer(LoadedPolicy.load(export_dir), GatewayConfig(
        bind="tcp://127.0.0.1:0", deadline_ms=200, admin_token_file=str(token_file),
        reload_roots=(str(export_dir.parent),))).start()
    srv.admin_token = token_file.read_text().strip()
    yield srv
    srv.stop()


def test_reload_under_load_loses_no_request(admin_server, export_dir):
    server = admin_server
    results, errors = [], []

    def hammer():
        try:
            with GatewayClient(server.endpoint, timeout_ms=3000) as client:
                for i in range(300):
                    results.append(client.infer(_obs(i))["seq"])
        except Exception as err:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(err)

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for w in workers:
        w.start()
    with GatewayClient(server.endpoint, timeout_ms=10000, admin_token=server.admin_token) as admin:
        for _ in range(3):
            assert admin.reload(str(export_dir))["observation"]["size"] == OBS_SIZE
    for w in workers:
        w.join(30)
    assert not errors and len(results) == 900


def test_reload_of_a_missing_export_is_refused_and_serving_continues(admin_server, export_dir):
    with GatewayClient(admin_server.endpoint, admin_token=admin_server.admin_token) as client:
        with pytest.raises(GatewayError, match="reload_failed.*does not exist"):
            client.reload(str(export_dir.parent / "nowhere"))
        assert client.infer(_obs(6))["target"].shape == (5,)


def test_shutdown_is_refused_unless_enabled(server, admin_server):
    with GatewayClient(server.endpoint) as client:
        with pytest.raises(GatewayError, match="forbidden.*admin requests are off"):
            client.shutdown()
        assert client.ping()["type"] == "pong"
    with GatewayClient(admin_server.endpoint, admin_token=admin_server.admin_token) as admin:
        with pytest.raises(GatewayError, match="forbidden.*--allow-shutdown"):
            admin.shutdown()
        assert admin.ping()["type"] == "pong"


def test_client_recovers_when_the_server_restarts(export_dir):
    policy = LoadedPolicy.load(export_dir)
    srv = GatewayServer(policy, GatewayConfig(bind="tcp://127.0.0.1:0")).start()
    endpoint = srv.endpoint
    client = GatewayClient(endpoint, timeout_ms=300, retries=10).connect()
    assert client.infer(_obs(7))["target"].shape == (5,)
    srv.stop()
    restarted = {}

    def restart():
        time.sleep(0.5)
        restarted["srv"] = GatewayServer(policy, GatewayConfig(bind=endpoint)).start()

    t = threading.Thread(target=restart)
    t.start()
    reply = client.infer(_obs(8))
    t.join()
    assert reply["target"].shape == (5,) and client.reconnects >= 1
    client.close()
    restarted["srv"].stop()


def test_timeout_is_bounded_and_close_does_not_hang():
    client = GatewayClient("tcp://127.0.0.1:1", timeout_ms=50, retries=2)
    start = time.monotonic()
    with pytest.raises(GatewayTimeout, match="3 attempts"):
        client.connect()
    client.close()
    assert time.monotonic() - start < 2.0


def test_a_client_killed_mid_request_does_not_disturb_others(server):
    sock = _raw(server.endpoint)
    session = _hello(sock)
    sock.send(encode({"type": "infer", "seq": 1, "obs": pack_array(_obs(9)), "session": session}))
    sock.close(linger=0)  # gone before its reply
    with GatewayClient(server.endpoint) as client:
        for i in range(20):
            assert client.infer(_obs(i))["seq"] > 0


_FUZZ_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=8), st.binary(max_size=96),
    st.sampled_from(["hello", "infer", "ping", "stats", "reset", "reload", "shutdown"]),
    st.fixed_dictionaries({"dtype": st.sampled_from(["<f4", "<f8", "x"]), "shape": st.lists(st.integers(-2, 30), max_size=3),
                           "data": st.binary(max_size=96)}))


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.one_of(
    st.binary(max_size=256),
    st.tuples(st.dictionaries(st.sampled_from(["type", "seq", "obs", "id", "deadline_ms", "protocol_version", "path",
                                               "token", "sent", "x"]), _FUZZ_VALUES, max_size=6), st.booleans()),
))
def test_fuzzed_messages_never_kill_the_server(fuzz_server, payload):
    sock, session = fuzz_server
    if isinstance(payload, tuple):  # a map, with the live session half of the time (reaches the checks behind it)
        msg, with_session = payload
        payload = encode({**msg, "session": session} if with_session else msg)
    reply = _ask(sock, payload, timeout_ms=5000)
    assert isinstance(reply.get("ok"), bool)
    if not reply["ok"]:
        assert reply["error"]["code"] and isinstance(reply["error"]["message"], str)


@pytest.fixture(scope="module")
def fuzz_server(export_dir):
    srv = GatewayServer(LoadedPolicy.load(export_dir), GatewayConfig(bind="tcp://127.0.0.1:0")).start()
    sock = _raw(srv.endpoint)
    session = _hello(sock)
    yield sock, session
    assert _ask(sock, encode({"type": "ping"}))["type"] == "pong"  # still serving after the fuzzing
    sock.close()
    srv.stop()


def test_non_loopback_bind_requires_curve_keys_and_curve_works(export_dir, tmp_path):
    import zmq.auth

    policy = LoadedPolicy.load(export_dir)
    with pytest.raises(ValueError, match="CURVE"):
        GatewayServer(policy, GatewayConfig(bind="tcp://0.0.0.0:0"))
    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    srv = GatewayServer(policy, GatewayConfig(bind="tcp://127.0.0.1:0", curve_secret_key_file=secret_file)).start()
    try:
        server_public, _ = zmq.auth.load_certificate(public_file)
        with GatewayClient(srv.endpoint, server_public_key=server_public) as client:
            assert client.infer(_obs(10))["target"].shape == (5,)
        with pytest.raises(GatewayTimeout):  # a client without the server key gets nothing
            GatewayClient(srv.endpoint, timeout_ms=100, retries=0).connect()
    finally:
        srv.stop()


def test_prometheus_endpoint_serves_a_valid_exposition(export_dir):
    from prometheus_client.parser import text_string_to_metric_families

    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = GatewayServer(LoadedPolicy.load(export_dir), GatewayConfig(bind="tcp://127.0.0.1:0",
                                                                     metrics_port=port)).start()
    try:
        with GatewayClient(srv.endpoint) as client:
            for i in range(5):
                client.infer(_obs(i))
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["roarm_gateway_infer_latency_seconds"].samples
        infer = [s for s in families["roarm_gateway_requests"].samples if s.labels.get("type") == "infer"]
        assert infer and infer[0].value == 5
    finally:
        srv.stop()


def test_event_log_rotates_into_gzip_files(tmp_path):
    from roarm_lab.gateway.eventlog import EventLog

    log = EventLog(tmp_path / "ev.jsonl", max_bytes=2000, backups=3)
    for i in range(200):
        log.write("tick", id=i, pad="x" * 40)
    log.close()
    rotated = sorted(tmp_path.glob("ev.jsonl.*.gz"))
    assert len(rotated) == 3
    lines = gzip.open(rotated[0], "rt").read().splitlines()
    assert all(json.loads(line)["event"] == "tick" for line in lines)


def test_latency_percentiles_all_time_and_window():
    stats = LatencyStats(window=100)
    for v in range(1, 1001):
        stats.add(float(v))
    assert stats.all_time()["p50"] == pytest.approx(500, rel=0.03)
    assert stats.all_time()["p99"] == pytest.approx(990, rel=0.03)
    assert stats.window()["p50"] == pytest.approx(950.5)


def test_sla_alert_fires_once_per_cooldown():
    from roarm_lab.gateway.stats import GatewayStats, SlaMonitor

    stats = GatewayStats(window=100)
    for _ in range(100):
        stats.record_infer(None, 10.0, 10.0, 5000.0, missed=False)
    sla = SlaMonitor(p95_us=1000.0, miss_rate=0.5, cooldown_s=60.0)
    assert sla.check(stats, now=0.0)["reasons"]
    assert sla.check(stats, now=30.0) is None and sla.check(stats, now=61.0) is not None


def test_a_seq_already_in_flight_is_refused_and_the_first_is_still_answered(export_dir):
    policy = LoadedPolicy.load(export_dir)
    fast = policy._run
    policy._run = lambda obs: (time.sleep(0.3), fast(obs))[1]
    srv = GatewayServer(policy, GatewayConfig(bind="tcp://127.0.0.1:0", deadline_ms=1000)).start()
    try:
        sock = _raw(srv.endpoint)
        session = _hello(sock)
        # seq 1 misses its 20 ms deadline: the watchdog answers it and serves the socket while the policy runs
        first = _ask(sock, encode({"type": "infer", "seq": 1, "obs": pack_array(_obs(10)), "deadline_ms": 20,
                                   "session": session}))
        assert first["flags"]["deadline_miss"] is True
        request = encode({"type": "infer", "seq": 5, "obs": pack_array(_obs(11)), "session": session})
        sock.send(request)  # queued behind the running inference
        sock.send(request)  # the same seq again while the first is still waiting
        replies = []
        for _ in range(2):
            assert sock.poll(3000)
            replies.append(msgpack.unpackb(sock.recv(), raw=False))
        assert replies[0]["ok"] is False and "in flight" in replies[0]["error"]["message"]
        assert replies[1]["ok"] is True and replies[1]["seq"] == 5 and not replies[1]["flags"]["deadline_miss"]
        sock.close()
    finally:
        srv.stop()


def test_every_request_type_of_the_protocol_has_exactly_one_handler(export_dir):
    from roarm_lab.policy import LoadedPolicy
    from roarm_lab.gateway.protocol import REQUEST_TYPES
    from roarm_lab.gateway.server import GatewayConfig, GatewayServer

    srv = GatewayServer(LoadedPolicy.load(export_dir), GatewayConfig(bind="tcp://127.0.0.1:0"))
    try:
        assert set(srv._handlers) == set(REQUEST_TYPES)
    finally:
        srv.close()


def test_requests_that_arrive_together_run_as_one_batch_and_each_gets_its_own_action(export_dir):
    """Queued requests of several sessions run through the policy together; every reply is its own observation's
    action, and two requests of one session integrate in order, exactly as if they had run one by one."""
    reference = LoadedPolicy.load(export_dir)
    policy = LoadedPolicy.load(export_dir)
    fast, sizes = policy._run, []

    def slow_first(obs):  # the first inference takes 0.3 s, so the others queue up behind it
        sizes.append(len(obs))
        if len(sizes) == 1:
            time.sleep(0.3)
        return fast(obs)

    policy._run = slow_first
    srv = GatewayServer(policy, GatewayConfig(bind="tcp://127.0.0.1:0", deadline_ms=5000)).start()
    try:
        socks = [_raw(srv.endpoint) for _ in range(4)]
        sessions = [_hello(s) for s in socks]
        socks[0].send(encode({"type": "infer", "seq": 1, "obs": pack_array(_obs(20)), "session": sessions[0]}))
        time.sleep(0.1)  # it is running now
        sent = {}
        for k, (sock, session) in enumerate(zip(socks, sessions)):
            for seq in (2, 3) if k == 1 else (2,):
                obs = _obs(30 + 10 * k + seq)
                sent[(k, seq)] = obs
                sock.send(encode({"type": "infer", "seq": seq, "obs": pack_array(obs), "session": session}))
        replies = {}
        for k, sock in enumerate(socks):
            for _ in range(1 + (k <= 1)):
                assert sock.poll(3000), "no reply"
                reply = msgpack.unpackb(sock.recv(), raw=False)
                assert reply["ok"] and not reply["flags"]["deadline_miss"], reply
                replies[(k, reply["seq"])] = reply
        assert max(sizes) == 5, f"the five queued requests should have run as one batch, ran as {sizes}"
        for key, obs in sent.items():
            action = np.frombuffer(replies[key]["action"]["data"], "<f4")
            np.testing.assert_allclose(action, reference.infer(obs), atol=1e-5)
        meta = reference.meta
        scale, lower, upper = (np.array(meta["action"][k]) for k in ("scale", "lower", "upper"))
        first = np.frombuffer(replies[(1, 2)]["target"]["data"], "<f4")
        second = np.frombuffer(replies[(1, 3)]["target"]["data"], "<f4")
        np.testing.assert_allclose(second, np.clip(first + scale * reference.infer(sent[(1, 3)]), lower, upper),
                                   atol=1e-5)
        for sock in socks:
            sock.close()
    finally:
        srv.stop()
