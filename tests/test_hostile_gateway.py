"""The gateway against a hostile local user (issue 11, items 2-6 and the protocol details): real ZeroMQ sockets,
the project's own export, files a user could plant. Each test is the attack, then the property that must hold."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from roarm_lab.assets.joint_table import JOINTS
from roarm_lab.gateway.admin import new_admin_token
from roarm_lab.gateway.benchmark import _start_gateway
from roarm_lab.gateway.client import GatewayClient, GatewayError
from roarm_lab.policy.spec import PolicyLoadError
from roarm_lab.policy import LoadedPolicy
from roarm_lab.gateway.protocol import MAX_FRAME_BYTES, PROTOCOL_VERSION, encode, pack_array
from roarm_lab.gateway.server import GatewayConfig, GatewayServer
from roarm_lab.gateway.soak import rss_mb

OBS_SIZE = 29
BOX = {j.name: (j.lower, j.upper) for j in JOINTS}


def _obs(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=OBS_SIZE).astype(np.float32) * 0.1


def _raw(endpoint: str, identity: bytes | None = None) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if identity is not None:
        sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.connect(endpoint)
    return sock


def _ask(sock: zmq.Socket, message: dict | bytes, timeout_ms: int = 3000) -> dict | None:
    sock.send(message if isinstance(message, bytes) else encode(message))
    if not sock.poll(timeout_ms):
        return None
    return msgpack.unpackb(sock.recv(), raw=False)


def _hello(sock: zmq.Socket) -> bytes:
    reply = _ask(sock, {"type": "hello", "protocol_version": PROTOCOL_VERSION})
    assert reply and reply["ok"], reply
    return reply["session"]


def _infer(sock: zmq.Socket, session: bytes, obs: np.ndarray, seq: int = 1, **extra) -> dict | None:
    return _ask(sock, {"type": "infer", "seq": seq, "obs": pack_array(obs), "session": session, **extra})


@pytest.fixture
def served(export_dir, tmp_path):
    """A server with admin on (a private token file) and reloads allowed from tmp_path/allowed only."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    token_file = new_admin_token(tmp_path / "admin.token")
    made = []

    def make(**cfg):
        config = dict(bind="tcp://127.0.0.1:0", deadline_ms=500, admin_token_file=str(token_file),
                      reload_roots=(str(allowed),), event_log=str(tmp_path / "events.jsonl"))
        config.update(cfg)
        srv = GatewayServer(LoadedPolicy.load(export_dir), GatewayConfig(**config)).start()
        srv.admin_token = token_file.read_text().strip()
        srv.allowed = allowed
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


def _copy_export(export_dir, dest, edit=None):
    shutil.copytree(export_dir, dest)
    if edit is not None:
        meta = json.loads((dest / "policy.json").read_text())
        edit(meta)
        (dest / "policy.json").write_text(json.dumps(meta))
    return dest


# ---------------------------------------------------------------------------- 2. NaN targets
def test_a_huge_finite_observation_is_a_coded_error_and_a_hold_and_leaves_the_session_clean(served, export_dir):
    policy = LoadedPolicy.load(export_dir)
    huge = np.full(OBS_SIZE, 3.4e38, np.float32)
    assert not np.isfinite(policy.infer(huge)).all()  # the attack: finite input, non-finite policy output
    srv = served()
    sock = _raw(srv.endpoint)
    session = _hello(sock)
    good = _obs(1)
    bad = _infer(sock, session, huge, seq=1)
    assert bad["ok"] is False and bad["error"]["code"] == "not_finite" and bad["seq"] == 1
    hold = np.frombuffer(bad["hold"]["data"], "<f4")
    assert np.isfinite(hold).all()
    lower, upper = policy.convention.lower, policy.convention.upper
    assert np.all(hold >= lower) and np.all(hold <= upper)
    after = _infer(sock, session, good, seq=2)
    fresh_sock = _raw(srv.endpoint)  # a session that never saw the bad request
    fresh = _infer(fresh_sock, _hello(fresh_sock), good, seq=1)
    assert after["ok"] and np.isfinite(np.frombuffer(after["target"]["data"], "<f4")).all()
    assert after["target"]["data"] == fresh["target"]["data"]  # the bad request changed nothing
    stats = _ask(sock, {"type": "stats"})["stats"]
    assert stats["errors"]["not_finite"] == 1
    sock.close()
    fresh_sock.close()


def test_the_bridge_holds_instead_of_sending_a_non_finite_target(export_dir):
    from roarm_lab.policy import ActionConvention, ClientTargets, NotFiniteError

    convention = ActionConvention(json.loads((export_dir / "policy.json").read_text()))
    state = ClientTargets()
    first, _ = convention.to_targets(np.zeros(5, np.float32), _obs(2), state)
    kept = first.copy()
    for poison in (np.full(5, np.nan, np.float32), np.array([np.inf, 0, 0, 0, 0], np.float32)):
        with pytest.raises(NotFiniteError):
            convention.to_targets(poison, _obs(2), state)
        np.testing.assert_array_equal(state.target, kept)  # the integrator is untouched


# ---------------------------------------------------------------------------- 3. admin and limits
def test_admin_requests_are_off_by_default_and_refused_without_the_token(served, export_dir):
    plain = GatewayServer(LoadedPolicy.load(export_dir), GatewayConfig(bind="tcp://127.0.0.1:0")).start()
    try:
        with GatewayClient(plain.endpoint) as client:
            with pytest.raises(GatewayError, match="forbidden: reload is an admin request.*off"):
                client.reload(str(export_dir))
    finally:
        plain.stop()
    srv = served()
    target = _copy_export(export_dir, srv.allowed / "v2")
    sock = _raw(srv.endpoint)
    assert _ask(sock, {"type": "reload", "path": str(target), "token": srv.admin_token})["error"]["code"] == "no_hello"
    session = _hello(sock)
    wrong = _ask(sock, {"type": "reload", "path": str(target), "token": "0" * 64, "session": session})
    assert wrong["error"]["code"] == "forbidden" and "token" in wrong["error"]["message"]
    with GatewayClient(srv.endpoint, admin_token=srv.admin_token) as admin:
        assert admin.reload(str(target))["observation"]["size"] == OBS_SIZE  # the right token works
    events = [json.loads(line) for line in (srv.allowed.parent / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "admin_refused" for e in events)
    assert srv.admin_token not in (srv.allowed.parent / "events.jsonl").read_text()  # never logged


def test_a_token_file_other_users_can_read_is_refused(export_dir, tmp_path):
    token = new_admin_token(tmp_path / "t")
    token.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        GatewayServer(LoadedPolicy.load(export_dir), GatewayConfig(bind="tcp://127.0.0.1:0",
                                                                    admin_token_file=str(token)))


def test_exported_limits_can_narrow_the_safe_box_but_never_widen_it(served, export_dir, tmp_path):
    def widen(meta):
        meta["action"]["lower"] = [-1000.0] * 5
        meta["action"]["upper"] = [1000.0] * 5
        meta["action"]["scale"] = [1000.0] * 5

    wide = _copy_export(export_dir, tmp_path / "allowed" / "wide", widen)
    with pytest.raises(PolicyLoadError, match="'base'.*not inside the joint table's safe box"):
        LoadedPolicy.load(wide)
    from roarm_lab.real.bridge import BridgeError, load_meta

    with pytest.raises(BridgeError, match="safe box"):
        load_meta(wide)
    srv = served()
    with GatewayClient(srv.endpoint, admin_token=srv.admin_token) as admin:
        with pytest.raises(GatewayError, match="reload_failed.*safe box"):
            admin.reload(str(wide))
        obs = _obs(3)
        obs[:5] = 40.0  # joints read far outside: targets stay in the joint table's box
        target = admin.infer(obs)["target"]
    joints = json.loads((export_dir / "policy.json").read_text())["action"]["joint_names"]
    assert all(BOX[j][0] - 1e-6 <= t <= BOX[j][1] + 1e-6 for j, t in zip(joints, target))

    def narrow(meta):
        meta["action"]["upper"][0] = 0.5  # the base may only turn to 0.5 rad

    narrowed = LoadedPolicy.load(_copy_export(export_dir, tmp_path / "narrow", narrow))
    assert narrowed.convention.upper[0] == pytest.approx(0.5)


@pytest.mark.parametrize("field, value", [
    (("action", "scale"), [float("nan")] * 5), (("control_period_s",), float("inf")),
    (("files", "onnx"), "../../../etc/passwd"), (("action", "joint_names"), ["nope"] * 5),
    (("observation", "size"), 10**9),
])
def test_a_malformed_policy_json_is_refused_naming_the_field(export_dir, tmp_path, field, value):
    def edit(meta):
        node = meta
        for key in field[:-1]:
            node = node[key]
        node[field[-1]] = value

    with pytest.raises(PolicyLoadError, match=field[-1]):
        LoadedPolicy.load(_copy_export(export_dir, tmp_path / "bad", edit))


def test_reload_only_reads_inside_the_allowed_folders(served, export_dir, tmp_path):
    srv = served()
    outside = _copy_export(export_dir, tmp_path / "elsewhere")
    (srv.allowed / "link").symlink_to(outside, target_is_directory=True)  # inside by name, outside in fact
    with GatewayClient(srv.endpoint, admin_token=srv.admin_token) as admin:
        for path in (outside, srv.allowed / "link", srv.allowed / ".." / "elsewhere"):
            with pytest.raises(GatewayError, match="not inside an allowed reload folder"):
                admin.reload(str(path))
        assert admin.infer(_obs(4))["target"].shape == (5,)


# ---------------------------------------------------------------------------- 4. reload freeze
def test_a_reload_of_a_fifo_or_a_huge_file_is_refused_and_the_gateway_keeps_answering(served, export_dir):
    srv = served()
    fifo_export = _copy_export(export_dir, srv.allowed / "fifo")
    (fifo_export / "policy.onnx").unlink()
    os.mkfifo(fifo_export / "policy.onnx")  # nobody ever writes: an open for reading would block forever
    huge_export = _copy_export(export_dir, srv.allowed / "huge")
    with open(huge_export / "policy.onnx", "r+b") as f:
        f.truncate(1 << 30)  # a sparse 1 GiB file
    linked = _copy_export(export_dir, srv.allowed / "linked")
    (linked / "policy.onnx").unlink()
    (linked / "policy.onnx").symlink_to(export_dir / "policy.onnx")
    admin_sock, other = _raw(srv.endpoint), GatewayClient(srv.endpoint, timeout_ms=3000).connect()
    session = _hello(admin_sock)
    for folder, why in ((fifo_export, "not a regular file"), (huge_export, "the limit is"),
                        (linked, "symbolic link")):
        admin_sock.send(encode({"type": "reload", "path": str(folder), "token": srv.admin_token, "session": session}))
        assert other.ping()["type"] == "pong"  # another client is answered while the reload runs
        assert other.infer(_obs(5))["target"].shape == (5,)
        assert admin_sock.poll(10_000)
        reply = msgpack.unpackb(admin_sock.recv(), raw=False)
        assert reply["error"]["code"] == "reload_failed" and why in reply["error"]["message"]
    other.close()
    admin_sock.close()


# ---------------------------------------------------------------------------- 5. connection takeover
def test_a_copied_routing_id_does_not_get_the_session(served):
    srv = served()
    with GatewayClient(srv.endpoint, timeout_ms=500, retries=6) as victim:
        assert victim.infer(_obs(6))["target"].shape == (5,)
        identity = victim.socket.getsockopt(zmq.ROUTING_ID)  # the test knows it; nothing shows it to a peer
        stats = victim.stats()
        blob = json.dumps(stats)
        assert identity.hex() not in blob and victim.session.hex() not in blob
        assert set(stats["clients"]) <= {f"s{i}" for i in range(1, 100)}  # labels, not ids
        assert identity.hex() not in (srv.allowed.parent / "events.jsonl").read_text()
        thief = _raw(srv.endpoint, identity=identity)  # the same routing id, as the attack
        for message in ({"type": "infer", "seq": 2, "obs": pack_array(_obs(6))},
                        {"type": "infer", "seq": 3, "obs": pack_array(_obs(6)), "session": b"\0" * 16},
                        {"type": "reset"}):
            reply = _ask(thief, message, timeout_ms=1000)
            # the pipe may be the victim's again by now (it reconnects and takes it back): no reply, or no session
            assert reply is None or (reply["ok"] is False and reply["error"]["code"] == "no_hello")
        thief.close()
        assert victim.infer(_obs(6))["target"].shape == (5,)  # the victim is served on
    other = _raw(srv.endpoint, identity=b"other-id")  # a peer with a token it was not given
    assert _infer(other, victim.session, _obs(6), seq=4)["error"]["code"] == "no_hello"
    other.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gateway_process(export_dir):
    """The gateway CLI in its own process (a libzmq abort must not take pytest along): (process, endpoint)."""
    port = _free_port()
    proc = _start_gateway(str(export_dir), port)
    assert proc.poll() is None
    yield proc, f"tcp://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_claiming_the_routing_id_the_server_would_generate_next_does_not_kill_it(gateway_process):
    """libzmq aborts a ROUTER whose generated id collides with a claimed one; unseeded, its first is 0x6b8b4567."""
    proc, endpoint = gateway_process
    claims = [_raw(endpoint, identity=b"\0" + struct.pack(">I", 0x6B8B4567 + k)) for k in range(32)]
    for sock in claims:
        assert _ask(sock, {"type": "ping"})["type"] == "pong"
    plain = [_raw(endpoint) for _ in range(8)]  # peers without an id: the server generates theirs
    for sock in plain:
        assert _ask(sock, {"type": "ping"})["type"] == "pong"
    assert proc.poll() is None
    for sock in claims + plain:
        sock.close()


# ---------------------------------------------------------------------------- 6. memory and deadlines
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's RSS from /proc (Linux)")
def test_connections_that_reuse_a_live_routing_id_do_not_grow_the_server(gateway_process):
    """With ROUTER_HANDOVER off, libzmq kept every refused duplicate-id connection and the data it had sent."""
    proc, endpoint = gateway_process
    holder = _raw(endpoint, identity=b"held-id")
    assert _ask(holder, {"type": "ping"})["type"] == "pong"
    before = rss_mb(proc.pid)
    ctx = zmq.Context()
    for _ in range(1500):  # each one sends 100 kB under the held id, then goes
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, b"held-id")
        sock.connect(endpoint)
        sock.send(b"\x00" * 100_000)
        time.sleep(0.002)
        sock.close(0)
    ctx.term()
    probe = _raw(endpoint)
    assert _ask(probe, {"type": "ping"}, timeout_ms=10_000)["type"] == "pong"
    assert rss_mb(proc.pid) - before < 60  # a leak would keep 1500 x 100 kB = 150 MB
    probe.close()
    holder.close()


def test_a_flood_of_identities_leaves_bounded_state_and_a_small_stats_reply(served):
    srv = served(max_sessions=50)
    with GatewayClient(srv.endpoint) as good:
        good.infer(_obs(7))
        for _ in range(6):  # 300 identities, each says hello (and a few send garbage)
            socks = [_raw(srv.endpoint) for _ in range(50)]
            for sock in socks:
                sock.send(encode({"type": "hello", "protocol_version": PROTOCOL_VERSION, "client": "x" * 500}))
                sock.send(b"\xc1 garbage")
            for sock in socks:
                assert sock.poll(3000)
                sock.recv()
                sock.close()
        assert len(srv.sessions) <= 50
        stats = good.stats()
        assert stats["sessions"] <= 50 and len(stats["clients"]) <= 32
        assert len(encode(stats)) < 16_000
        # the good client's session was evicted by the flood: it says hello again by itself and is served
        assert good.infer(_obs(7))["target"].shape == (5,)


def test_idle_sessions_are_pruned(served):
    srv = served(session_idle_s=0.3)
    socks = [_raw(srv.endpoint) for _ in range(10)]
    for sock in socks:
        _hello(sock)
    end = time.monotonic() + 10
    while len(srv.sessions) and time.monotonic() < end:
        time.sleep(0.1)
    assert len(srv.sessions) == 0
    for sock in socks:
        sock.close()


def test_oversized_frames_and_long_envelopes_are_dropped_not_echoed(served):
    srv = served()
    assert srv.socket.getsockopt(zmq.MAXMSGSIZE) == MAX_FRAME_BYTES and srv.socket.getsockopt(zmq.RCVHWM) <= 64
    big = _raw(srv.endpoint)
    big.send(b"\x00" * (40 << 20))  # one 40 MB frame: ZeroMQ drops the peer before buffering it
    assert not big.poll(500)
    long = _raw(srv.endpoint)
    long.send_multipart([b"e" * 100_000] * 4 + [encode({"type": "ping"})])  # an envelope of the peer's choosing
    assert not long.poll(500)
    assert _ask(long, {"type": "ping"})["type"] == "pong"  # a well-formed request on that socket is answered
    assert srv.stats.errors["bad_envelope"] >= 1
    big.close()
    long.close()


def test_a_session_that_floods_infers_is_refused_beyond_its_in_flight_limit(served):
    srv = served(max_in_flight=4)
    fast = srv.policy._run
    srv.policy._run = lambda obs: (time.sleep(0.3), fast(obs))[1]  # stuck: the watchdog reads the socket meanwhile
    sock = _raw(srv.endpoint)
    session = _hello(sock)
    for seq in range(40):
        sock.send(encode({"type": "infer", "seq": seq, "obs": pack_array(_obs(seq)), "session": session,
                          "deadline_ms": 20}))
    replies = []
    while len(replies) < 40 and sock.poll(5000):
        replies.append(msgpack.unpackb(sock.recv(), raw=False))
    assert len(replies) == 40  # every request is answered ...
    refused = [r for r in replies if not r["ok"]]
    assert refused and all(r["error"]["code"] == "overloaded" for r in refused)  # ... most of them refused
    with srv._lock:
        assert not srv._pending and all(s.in_flight == 0 for s in srv.sessions._by_token.values())
    sock.close()


def test_time_queued_before_the_server_reads_a_request_counts_against_its_deadline(served):
    srv = served()
    out = []
    with GatewayClient(srv.endpoint, timeout_ms=5000) as client:
        client.infer(_obs(8), deadline_ms=20)
        worker = threading.Thread(target=lambda: out.append(client.infer(_obs(8), deadline_ms=20)))
        with srv._lock:  # the server is busy: the request waits in the queues, unread
            worker.start()
            time.sleep(0.15)
        worker.join(10)
        stats = client.stats()
    reply = out[0]
    assert reply["flags"]["deadline_miss"] is True and "late_reply" not in reply["flags"]  # the server flagged it
    assert reply["timings"]["queue_us"] >= 20_000
    assert stats["deadline_misses"] >= 1  # and counted it
    sock = _raw(srv.endpoint)  # a raw client that says it sent its request 50 ms ago
    session = _hello(sock)
    old = _infer(sock, session, _obs(8), deadline_ms=20, sent=time.monotonic() - 0.05)
    assert old["flags"]["deadline_miss"] is True and old["timings"]["inference_us"] == 0.0
    sock.close()


def test_a_short_soak_answers_the_good_client_and_accounts_truthfully(gateway_process):
    """The soak benchmark's properties on a short run: every late reply flagged, the server's count agrees."""
    from roarm_lab.gateway.soak import run_soak

    proc, endpoint = gateway_process
    result = run_soak(endpoint, proc.pid, OBS_SIZE, seconds=6.0, clients=14, good=2)
    m = result["measured_client"]
    assert m["answered"] == m["requests"] > 0 and not m["failures"] and m["late_unflagged"] == 0
    server = m["server_counted_for_this_client"]
    if m["reconnects"] == 0:  # one session throughout: the server's counters are this client's
        assert server["requests"] == m["answered"]
        assert server["deadline_misses"] == m["flagged_deadline_miss"] - m["late_flagged_by_client_only"]
    assert m["server"]["sessions"] <= 1024


# ---------------------------------------------------------------------------- protocol details
def test_decode_level_errors_echo_the_request_id_and_true_is_not_version_one(served):
    srv = served()
    sock = _raw(srv.endpoint)
    reply = _ask(sock, {"type": "fly", "id": 42})
    assert reply["ok"] is False and reply["id"] == 42 and reply["error"]["code"] == "unknown_type"
    reply = _ask(sock, {"type": "hello", "protocol_version": True, "id": "h1"})
    assert reply["error"]["code"] == "unsupported_version" and reply["id"] == "h1"
    reply = _ask(sock, {"type": "hello", "protocol_version": float(PROTOCOL_VERSION)})
    assert reply["error"]["code"] == "unsupported_version"
    sock.close()


# ---------------------------------------------------------------------------- CLI errors
def test_a_port_in_use_is_a_one_line_error_naming_the_fix(export_dir, capsys, tmp_path):
    from roarm_lab.gateway.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--policy", str(export_dir), "--bind", f"tcp://127.0.0.1:{port}", "--event-log", ""]) == 2
        err = capsys.readouterr().err
        assert f"cannot bind tcp://127.0.0.1:{port}" in err and "--bind" in err and err.count("\n") == 1
        assert main(["--policy", str(export_dir), "--bind", "tcp://127.0.0.1:0", "--event-log", "",
                     "--metrics-port", str(port)]) == 2
        err = capsys.readouterr().err
        assert f"127.0.0.1:{port}" in err and "--metrics-port" in err and err.count("\n") == 1
    assert main(["--new-admin-token", str(tmp_path / "admin.token")]) == 0
    assert (tmp_path / "admin.token").stat().st_mode & 0o077 == 0
