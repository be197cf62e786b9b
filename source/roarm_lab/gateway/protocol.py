"""Gateway wire protocol v1: msgpack maps over ZeroMQ, arrays as raw little-endian float32 bytes.

No pickle anywhere. Every request is a map with ``type`` (hello, infer, ping, stats, reset, reload,
shutdown) and optional ``id`` (a correlation id echoed back). Every reply has ``ok``; errors carry
``error: {code, message}``. Version 2 binds a client's state to the ``session`` token that ``hello``
returns (a routing id can be copied, the token cannot be guessed). See docs/gateway.md.
"""

from __future__ import annotations

import ipaddress
import math
from enum import Enum
from typing import Any, Callable
from urllib.parse import urlparse

import msgpack
import msgspec
import numpy as np

PROTOCOL_VERSION = 2
SUPPORTED_VERSIONS = (2,)
MAX_MESSAGE_BYTES = 64 * 1024
MAX_FRAME_BYTES = 2 * MAX_MESSAGE_BYTES
"""ZeroMQ drops the connection of a peer that sends a larger frame (``MAXMSGSIZE``), before buffering it."""
MAX_ARRAY_LEN = 4096
MAX_MAP_LEN = 64
REQUEST_TYPES = ("hello", "infer", "ping", "stats", "reset", "reload", "shutdown")


class ErrorCode(str, Enum):
    BAD_MSGPACK = "bad_msgpack"
    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    BAD_ARRAY = "bad_array"
    WRONG_SIZE = "wrong_size"
    NOT_FINITE = "not_finite"
    TOO_LARGE = "too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    NO_HELLO = "no_hello"
    FORBIDDEN = "forbidden"
    OVERLOADED = "overloaded"
    RELOAD_FAILED = "reload_failed"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A request the server refuses; becomes an error reply, never a traceback on the wire."""

    def __init__(self, code: ErrorCode, message: str, request_id: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def pack_array(values: np.ndarray) -> dict[str, Any]:
    arr = np.ascontiguousarray(values, dtype="<f4")
    return {"dtype": "<f4", "shape": list(arr.shape), "data": arr.tobytes()}


def unpack_array(obj: Any, name: str = "array") -> np.ndarray:
    """Decode and check an array map: dtype, shape, byte count, size cap, finiteness."""
    if not isinstance(obj, dict) or not {"dtype", "shape", "data"} <= set(obj):
        raise ProtocolError(ErrorCode.BAD_ARRAY, f"{name} must be a map with dtype, shape and data")
    if obj["dtype"] != "<f4":
        raise ProtocolError(ErrorCode.BAD_ARRAY, f"{name} dtype must be '<f4' (little-endian float32), got {obj['dtype']!r}")
    shape = obj["shape"]
    if not isinstance(shape, (list, tuple)) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                       for s in shape) or len(shape) > 2:
        raise ProtocolError(ErrorCode.BAD_ARRAY, f"{name} shape must be a list of up to 2 non-negative ints")
    return array_values(shape, obj["data"], name).astype(np.float32)


def numpy_all_finite(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).all())


def array_values(shape: list[int], data: Any, name: str,
                 all_finite: Callable[[np.ndarray], bool] = numpy_all_finite) -> np.ndarray:
    """The checks of an array whose dtype and shape are well formed: size cap, byte count, finiteness.

    Shared by ``unpack_array`` and the typed fast path (``infer_codec``), so both refuse the same arrays with
    the same codes. Returns a read-only view of ``data``. ``all_finite``: the gateway passes the compiled loop
    (``policy.compiled.finite_check``); clients keep numpy's and never load numba for it.
    """
    count = shape[0] if len(shape) == 1 else math.prod(shape)
    if count > MAX_ARRAY_LEN:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{name} has {count} values; the limit is {MAX_ARRAY_LEN}")
    if not isinstance(data, (bytes, bytearray)) or len(data) != 4 * count:
        raise ProtocolError(ErrorCode.BAD_ARRAY, f"{name} data must be {4 * count} bytes for shape {list(shape)}")
    arr = np.frombuffer(data, dtype="<f4")
    if not all_finite(arr):
        raise ProtocolError(ErrorCode.NOT_FINITE, f"{name} contains NaN or Inf")
    return arr if len(shape) == 1 else arr.reshape(shape)


def _ext(code: int, data: bytes) -> msgspec.msgpack.Ext:
    """An extension value a request carried (its ``id``, say) stays an extension when a reply echoes it."""
    return msgspec.msgpack.Ext(code, data)


def _encode_other(value: Any) -> Any:
    if isinstance(value, msgpack.Timestamp):  # msgpack decodes extension -1 as a Timestamp: echo it as it came
        return msgspec.msgpack.Ext(-1, value.to_bytes())
    raise NotImplementedError(f"cannot encode a {type(value).__name__}")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_encode_other)
_DECODER = msgspec.msgpack.Decoder()


def encode(message: dict[str, Any]) -> bytes:
    """MessagePack of a message: msgspec's encoder writes the same bytes as ``msgpack.packb(use_bin_type=True)``
    (``tests/test_gateway_fast_path.py`` holds it to that) in about 60 % of the time."""
    return _ENCODER.encode(message)


def decode(frame: bytes, request_types: tuple[str, ...] = REQUEST_TYPES, codes: Any = ErrorCode) -> dict[str, Any]:
    """Decode one request frame; any malformation becomes a ProtocolError with its code.

    The framing is shared: the simulator service decodes its requests here too, with its own request types and
    error codes (an enum with the same members for the framing errors).
    """
    if len(frame) > MAX_MESSAGE_BYTES:
        raise ProtocolError(codes.TOO_LARGE, f"message of {len(frame)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        msg = msgpack.unpackb(frame, raw=False, strict_map_key=True, max_bin_len=MAX_MESSAGE_BYTES,
                              max_str_len=MAX_MESSAGE_BYTES, max_array_len=MAX_ARRAY_LEN, max_map_len=MAX_MAP_LEN,
                              ext_hook=_ext)
    except Exception as err:  # msgpack raises several types for malformed input
        raise ProtocolError(codes.BAD_MSGPACK, f"not a valid msgpack message ({type(err).__name__})") from None
    if not isinstance(msg, dict):
        raise ProtocolError(codes.BAD_REQUEST, "a request must be a msgpack map")
    kind = msg.get("type")
    if not isinstance(kind, str) or kind not in request_types:
        raise ProtocolError(codes.UNKNOWN_TYPE, f"unknown request type {kind!r:.40}; valid: {list(request_types)}",
                            msg.get("id"))
    return msg


def check_version(version: Any) -> None:
    """An integer this server speaks (``True`` is not 1)."""
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION, f"protocol version {version!r:.40} is not supported; this "
                            f"server speaks {list(SUPPORTED_VERSIONS)} (update the client: roarm_lab.gateway.client)")


def error_reply(code: ErrorCode, message: str, request_id: Any = None) -> dict[str, Any]:
    """``{"ok": false, "id", "error": {code, message}}``: the request's id is echoed whenever it was readable."""
    return {"ok": False, "id": request_id, "error": {"code": code.value, "message": message}}


def decode_reply(frame: bytes) -> dict[str, Any]:
    """Decode a reply frame (client side)."""
    try:
        reply = _DECODER.decode(frame)
    except msgspec.DecodeError as err:
        raise ProtocolError(ErrorCode.BAD_MSGPACK, f"the reply is not valid msgpack ({err})") from None
    if not isinstance(reply, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a reply must be a msgpack map")
    return reply


def is_loopback(endpoint: str) -> bool:
    """True for tcp endpoints on 127.0.0.0/8, ::1 or localhost, and for ipc/inproc."""
    parsed = urlparse(endpoint)
    if parsed.scheme in ("ipc", "inproc"):
        return True
    host = (parsed.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
