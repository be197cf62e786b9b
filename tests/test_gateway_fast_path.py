"""The gateway's compiled fast path answers exactly as the reference path: same bytes, same codes, same numbers.

Three compiled pieces (docs/gateway.md, "Fast path"): msgspec's typed decoding of infer requests, the numba MLP
that replaces ONNX Runtime for the exported MLP, and the numba form of the action convention. Each is held here
to the code it stands in for.
"""

from __future__ import annotations

import copy
import math

import msgpack
import numpy as np
import pytest
import zmq

from roarm_lab.gateway import server as server_module
from roarm_lab.gateway.infer_codec import decode_infer
from roarm_lab.gateway.protocol import MAX_MESSAGE_BYTES, PROTOCOL_VERSION, encode, pack_array
from roarm_lab.gateway.server import GatewayConfig, GatewayServer
from roarm_lab.policy import ClientTargets, LoadedPolicy
from roarm_lab.policy.compiled import compile_mlp, finite_check, mlp_weights
from roarm_lab.policy.convention import ActionConvention

pytest.importorskip("numba")

OBS_SIZE = 29


def _infer_message(session: bytes | None, seq: int = 1, obs: np.ndarray | None = None, **extra) -> dict:
    values = np.zeros(OBS_SIZE, np.float32) if obs is None else obs
    return {"type": "infer", "seq": seq, "id": seq, "obs": pack_array(values), "session": session, **extra}


def test_encode_writes_the_bytes_msgpack_writes():
    messages = [
        {"ok": True, "type": "action", "id": 3, "seq": 2 ** 40, "action": pack_array(np.arange(5.0)),
         "timings": {"queue_us": 1.5, "total_us": -3.25e-9}, "flags": {"clipped": [False, True]}, "n": None},
        {"s": "é" * 40, "big": 2 ** 64 - 1, "neg": -2 ** 63, "bin": b"\0" * 300, "tuple": (1, 2), "nan": math.nan},
        {"long": "x" * 70_000, "nested": [[{"a": [1, 2.5, "b"]}]]},
    ]
    for message in messages:
        assert encode(message) == msgpack.packb(message, use_bin_type=True)


def test_the_typed_decoder_takes_only_well_formed_flat_infer_requests():
    session = b"t" * 16
    good = _infer_message(session, deadline_ms=20, sent=1.5, config_hash="abc")
    typed, array = decode_infer(encode(good))
    assert typed.seq == 1 and array.shape == [OBS_SIZE] and typed.deadline_ms == 20
    assert decode_infer(encode(_infer_message(session)))[0].deadline_ms is not None  # absent: UNSET, not nil
    refused = {
        "bool seq": {**good, "seq": True},
        "unknown field": {**good, "extra": 1},
        "named parts": {**good, "obs": {"joint_pos": pack_array(np.zeros(5))}},
        "explicit nil deadline": {**good, "deadline_ms": None},
        "bool deadline": {**good, "deadline_ms": True},
        "string data": {**good, "obs": {**good["obs"], "data": "x" * 4 * OBS_SIZE}},
        "float64 dtype": {**good, "obs": {**good["obs"], "dtype": "<f8"}},
        "negative dim": {**good, "obs": {**good["obs"], "shape": [-1]}},
        "three dims": {**good, "obs": {**good["obs"], "shape": [1, 1, OBS_SIZE]}},
        "another request": {"type": "ping", "id": 1},
        "list id": {**good, "id": [1]},
        "int session": {**good, "session": 7},
    }
    for name, message in refused.items():
        assert decode_infer(encode(message)) is None, name
    assert decode_infer(b"\xc1") is None
    assert decode_infer(encode({**good, "pad": "x" * MAX_MESSAGE_BYTES})) is None


def _corpus(session: bytes) -> list[bytes]:
    """Good and bad infer frames: each is answered by the fast path or sent on to the reference path."""
    obs = np.random.default_rng(0).normal(size=OBS_SIZE).astype(np.float32)
    nan, inf = obs.copy(), obs.copy()
    nan[3], inf[7] = np.nan, -np.inf
    base = _infer_message(session, obs=obs)
    frames = []
    for i, edit in enumerate([
        {}, {"deadline_ms": 50}, {"deadline_ms": 0}, {"deadline_ms": 70000}, {"deadline_ms": None},
        {"deadline_ms": True}, {"sent": 1.0}, {"sent": 3}, {"config_hash": "not-the-export's"},
        {"obs": pack_array(nan)}, {"obs": pack_array(inf)}, {"obs": pack_array(obs[:10])},
        {"obs": {**pack_array(obs), "shape": [OBS_SIZE + 1]}}, {"obs": {**pack_array(obs), "shape": [2, 3000]}},
        {"obs": {**pack_array(obs), "shape": []}}, {"obs": {**pack_array(obs), "shape": [1, OBS_SIZE]}},
        {"obs": {**pack_array(obs), "dtype": "<f8"}}, {"obs": {**pack_array(obs), "extra": 1}},
        {"obs": {"joint_pos": pack_array(obs[:5])}}, {"obs": "zeros"}, {"seq": "1"}, {"seq": False},
        {"session": b"forged-token-000"}, {"session": None}, {"id": 1.5}, {"id": "req"}, {"unknown": 1},
    ]):
        message = copy.deepcopy(base)
        message.update(edit)
        message["seq"] = message["seq"] if "seq" in edit else 100 + i
        frames.append(encode(message))
    # extension values as ids: echoed as they came (msgpack's Timestamp once crashed the msgspec encoder)
    frames.append(msgpack.packb({**copy.deepcopy(base), "seq": 200, "id": msgpack.Timestamp(1, 0)}))
    frames.append(msgpack.packb({**copy.deepcopy(base), "seq": 201, "id": msgpack.ExtType(5, b"abc")}))
    # repeated keys: the last wins on both paths within msgpack's 64 entries; beyond, both refuse (bad_msgpack)
    for repeats in (3, 70):
        body = b"".join(msgpack.packb(k) + msgpack.packb(v) for k, v in base.items() if k != "seq")
        seqs = b"".join(msgpack.packb("seq") + msgpack.packb(300 + r) for r in range(repeats))
        count = len(base) - 1 + repeats
        header = bytes([0x80 + count]) if count < 16 else b"\xde" + count.to_bytes(2, "big")
        frames.append(header + body + seqs)
    return frames


def _answers(export_dir, frames_of, fast: bool, monkeypatch) -> list[dict]:
    """Each frame's reply from a fresh server, with the fast path on or off; timings and the session dropped."""
    if not fast:
        monkeypatch.setattr(server_module, "decode_infer", lambda frame: None)
    srv = GatewayServer(LoadedPolicy.load(export_dir, compiled=True), GatewayConfig(bind="tcp://127.0.0.1:0", deadline_ms=500,
                                                                     event_log="")).start()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTING_ID, b"fast-path-test")
    try:
        sock.connect(srv.endpoint)
        sock.send(encode({"type": "hello", "protocol_version": PROTOCOL_VERSION, "id": 0}))
        assert sock.poll(5000)
        session = msgpack.unpackb(sock.recv())["session"]
        replies = []
        for frame in frames_of(session):
            sock.send(frame)
            assert sock.poll(5000), "no reply"
            reply = msgpack.unpackb(sock.recv())
            reply.pop("timings", None)
            replies.append(reply)
        return replies
    finally:
        sock.close(0)
        srv.stop()
        monkeypatch.undo()


def test_every_frame_gets_the_same_reply_with_the_fast_path_on_or_off(export_dir, monkeypatch):
    fast = _answers(export_dir, _corpus, True, monkeypatch)
    reference = _answers(export_dir, _corpus, False, monkeypatch)
    assert len(fast) == len(reference) == len(_corpus(b"x" * 16))
    codes = [r.get("error", {}).get("code") for r in reference]
    assert codes.count(None) >= 5 and {"not_finite", "wrong_size", "bad_request", "bad_array", "no_hello",
                                        "too_large", "bad_msgpack"} <= set(codes), codes
    assert reference[-4]["id"] == msgpack.Timestamp(1, 0) and reference[-3]["id"] == msgpack.ExtType(5, b"abc")
    assert reference[-2]["seq"] == 302 and codes[-1] == "bad_msgpack"
    for i, (a, b) in enumerate(zip(fast, reference)):
        assert a == b, f"frame {i}: fast {a} != reference {b}"


def test_the_mlp_kernel_matches_onnx_runtime_and_a_changed_graph_falls_back(export_dir):
    import onnx

    policy = LoadedPolicy.load(export_dir, compiled=True)
    assert policy.inference == "numba-mlp" and LoadedPolicy.load(export_dir).inference == "onnxruntime"
    model = onnx.load(str(export_dir / "policy.onnx"))
    reference = LoadedPolicy.load(export_dir, "torchscript")
    obs = np.random.default_rng(3).normal(0.0, 2.0, (64, OBS_SIZE)).astype(np.float32)
    np.testing.assert_allclose(policy.infer_batch(obs), reference.infer_batch(obs), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(policy.infer(obs[0]), reference.infer(obs[0]), rtol=1e-4, atol=1e-5)

    weights = mlp_weights(model)
    changed = type(weights)(weights.mean, weights.divisor, weights.weights,
                            (weights.biases[0] + 0.5,) + weights.biases[1:], weights.activation, weights.alpha)
    assert not np.allclose(compile_mlp(changed)(obs), policy.infer_batch(obs), atol=1e-3)

    other = onnx.load(str(export_dir / "policy.onnx"))
    other.graph.node[3].op_type = "Selu"  # an activation the kernel does not know: ONNX Runtime serves
    assert mlp_weights(other) is None

    with pytest.raises(ValueError, match=f"takes \\(N, {OBS_SIZE}\\) observations"):
        policy.infer_batch(np.zeros((1, OBS_SIZE - 3), np.float32))  # never a read past the row


def test_an_export_whose_policy_json_disagrees_with_the_model_s_width_does_not_load(export_dir, tmp_path):
    import json
    import shutil

    from roarm_lab.policy import PolicyLoadError

    copy_dir = tmp_path / "exported"
    shutil.copytree(export_dir, copy_dir)
    meta = json.loads((copy_dir / "policy.json").read_text())
    last = meta["observation"]["terms"].pop()
    meta["observation"]["size"] -= last["size"]
    (copy_dir / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(PolicyLoadError, match="does not run on a"):
        LoadedPolicy.load(copy_dir, compiled=True)


def _convention_cases(rng: np.random.Generator, n: int):
    for k in range(n):
        action = rng.normal(0.0, 3.0, 5).astype(np.float32)
        previous = rng.normal(0.0, 2.0, 5).astype(np.float32)
        if k % 7 == 0:
            action[rng.integers(5)] = np.nan
        if k % 11 == 0:
            action[rng.integers(5)] = np.inf if k % 2 else -np.inf
        if k % 13 == 0:
            previous[rng.integers(5)] = np.float32(1e30)
        yield action, previous


@pytest.mark.parametrize("mode, max_step", [("relative", 0.1), ("relative", None), ("absolute", 0.05),
                                            ("absolute", None)])
def test_the_compiled_convention_is_the_rule_bit_for_bit(export_dir, mode, max_step):
    meta = copy.deepcopy(LoadedPolicy.load(export_dir).meta)
    meta["action"]["mode"] = mode
    if max_step is None:
        meta["action"].pop("max_step", None)
    else:
        meta["action"]["max_step"] = max_step
    compiled, rule = ActionConvention(meta, compiled=True), ActionConvention(meta)
    assert compiled._kernel is not None and rule._kernel is None
    obs = np.zeros(OBS_SIZE, np.float32)
    refusals = 0
    for action, previous in _convention_cases(np.random.default_rng(7), 3000):
        outcomes = []
        for convention in (compiled, rule):
            state = ClientTargets(previous.copy())
            try:
                target, clipped = convention.to_targets(action, obs, state)
                outcomes.append((target.dtype, target.tobytes(), clipped, state.target.tobytes()))
            except ValueError as err:
                outcomes.append((type(err).__name__, str(err), np.array_equal(state.target, previous)))
        assert outcomes[0] == outcomes[1], (action, previous)
        refusals += outcomes[0][0] == "NotFiniteError"
    assert 300 < refusals < 1500  # NaN and Inf actions were refused, the rest converted


def test_the_compiled_finite_check_agrees_with_numpy():
    check = finite_check()
    assert check is not None  # numba is there (the module skips otherwise)
    rng = np.random.default_rng(5)
    for k in range(500):
        values = rng.normal(0.0, 1e30, rng.integers(0, 64)).astype(np.float32)
        if values.size and k % 3:
            values[rng.integers(values.size)] = (np.nan, np.inf, -np.inf)[k % 3]
        assert check(values) == bool(np.isfinite(values).all())
        readonly = np.frombuffer(values.tobytes(), np.float32)
        assert check(readonly) == bool(np.isfinite(values).all())


def test_a_numba_that_cannot_load_leaves_every_path_on_numpy_and_onnx_runtime(export_dir, tmp_path):
    """A broken numba (here: one whose import fails) must not take the gateway, its client or the simulator
    service down: the protocol imports, the policy loads on ONNX Runtime, the convention runs the rule."""
    import subprocess
    import sys

    fake = tmp_path / "numba"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('llvmlite is broken here')\n")
    code = (f"import numpy as np; from roarm_lab.gateway.protocol import array_values; "
            f"from roarm_lab.policy import LoadedPolicy; p = LoadedPolicy.load({str(export_dir)!r}, compiled=True); "
            f"print(p.inference, p.convention._kernel is None, array_values([2], np.ones(2, np.float32).tobytes(), 'x'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[:2] == ["onnxruntime", "True"]
    assert "numba is installed but its kernels are unavailable" in done.stderr
