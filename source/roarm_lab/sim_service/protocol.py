"""Simulator control protocol v1: the gateway's framing (one msgpack map per frame, arrays as raw
little-endian float32, no pickle, size limits) with the simulator's own request types and error codes.

Every request is a map with ``type`` and optional ``id`` (echoed back) and, but for ``hello`` and ``ping``,
the service's ``secret``; a client names itself with ``client`` (its id) and ``client_name``. Every reply has
``ok``; errors carry ``error: {code, message}``, never a traceback. See docs/sim_service.md.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import numpy as np

from roarm_lab.gateway.protocol import ProtocolError, decode_reply, encode, pack_array, unpack_array
from roarm_lab.gateway.protocol import decode as decode_request

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
REQUEST_TYPES = ("hello", "ping", "status", "start", "stop", "shutdown", "reset", "set_target", "step",
                 "joint_state", "observation", "set_joint_targets", "act", "run_policy", "stop_policy", "record",
                 "render", "film")
OPEN_TYPES = ("hello", "ping")
"""The only requests served without the service's secret."""
OWNER_TYPES = ("stop", "reset", "set_target", "step", "set_joint_targets", "act", "run_policy", "stop_policy",
               "record", "film")
"""Requests that change or end the environment: only the client that owns it may send them."""

__all__ = ["PROTOCOL_VERSION", "REQUEST_TYPES", "OPEN_TYPES", "OWNER_TYPES", "SimErrorCode", "ProtocolError", "decode",
           "decode_reply", "encode", "error_reply", "pack_array", "unpack_array", "vector", "number", "integer", "text"]


class SimErrorCode(str, Enum):
    """The gateway's codes (same meaning) plus the simulator's own."""

    BAD_MSGPACK = "bad_msgpack"
    BAD_REQUEST = "bad_request"
    UNKNOWN_TYPE = "unknown_type"
    BAD_ARRAY = "bad_array"
    WRONG_SIZE = "wrong_size"
    NOT_FINITE = "not_finite"
    TOO_LARGE = "too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    FORBIDDEN = "forbidden"
    """Refused for this client: another client owns the environment, shutdown is off, a path outside the roots."""
    INTERNAL = "internal"
    UNAUTHORIZED = "unauthorized"
    """The request did not carry the service's secret (``hello`` and ``ping`` need none)."""
    NOT_STARTED = "not_started"
    """No environment: send ``start`` first."""
    START_FAILED = "start_failed"
    BUSY = "busy"
    """A policy run is in progress (``stop_policy`` ends it)."""
    REALTIME = "realtime"
    """The operation steps the simulation by hand, which a real-time service does itself."""
    UNREACHABLE = "unreachable"
    POLICY_FAILED = "policy_failed"
    RENDER_FAILED = "render_failed"


def decode(frame: bytes) -> dict[str, Any]:
    """Decode one request frame with the gateway's framing and limits, the simulator's types and codes."""
    return decode_request(frame, REQUEST_TYPES, SimErrorCode)


def error_reply(code: SimErrorCode, message: str, request_id: Any = None) -> dict[str, Any]:
    return {"ok": False, "id": request_id, "error": {"code": code.value, "message": message}}


# ---------------------------------------------------------------------- field readers (each names the field)
def vector(msg: dict[str, Any], name: str, size: int | None = None, required: bool = True) -> np.ndarray | None:
    """A float vector field: an array map (the gateway's form) or a plain list of numbers; finite, sized."""
    raw = msg.get(name)
    if raw is None:
        if required:
            raise ProtocolError(SimErrorCode.BAD_REQUEST, f"'{name}' is required")
        return None
    if isinstance(raw, (list, tuple)):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
            raise ProtocolError(SimErrorCode.BAD_ARRAY, f"'{name}' must be a list of numbers")
        arr = np.asarray(raw, dtype=np.float64).reshape(-1)
        if not np.isfinite(arr).all():
            raise ProtocolError(SimErrorCode.NOT_FINITE, f"'{name}' contains NaN or Inf")
    else:
        arr = unpack_array(raw, name).astype(np.float64).reshape(-1)
    if size is not None and arr.size != size:
        raise ProtocolError(SimErrorCode.WRONG_SIZE, f"'{name}' has {arr.size} values, expected {size}")
    return arr


def number(msg: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = msg.get(name, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ProtocolError(SimErrorCode.BAD_REQUEST, f"'{name}' must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def integer(msg: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = msg.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ProtocolError(SimErrorCode.BAD_REQUEST, f"'{name}' must be an integer in [{low}, {high}], got {value!r}")
    return value


def text(msg: dict[str, Any], name: str, default: str | None = None, max_len: int = 4096) -> str | None:
    value = msg.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len or "\x00" in value:
        raise ProtocolError(SimErrorCode.BAD_REQUEST, f"'{name}' must be a string of at most {max_len} characters")
    return value
