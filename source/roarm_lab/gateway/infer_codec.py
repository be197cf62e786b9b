"""The typed fast path for ``infer`` requests: msgspec decodes and type-checks the frame in compiled code.

``decode_infer`` returns an ``InferRequest`` only for a frame that is a well-formed infer request of exactly the
fields a client sends, each of the type the protocol allows; for anything else (another request type, an unknown
field, a wrong type, malformed MessagePack) it returns None and the server decodes the frame the reference way
(``protocol.decode``), whose checks decide the error code. So the fast path can accept only what the reference
path accepts, and every refusal keeps its code and message. What the types cannot say (the size cap, the byte
count, finiteness, the deadline's range, the session) is checked after decoding by the code both paths share.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import msgspec
from msgspec import Meta, Struct

from roarm_lab.gateway.protocol import MAX_MESSAGE_BYTES


class WireArray(Struct, forbid_unknown_fields=True):
    """``{dtype, shape, data}``: a flat or 2-D float32 array as raw little-endian bytes."""

    dtype: Literal["<f4"]
    shape: Annotated[list[Annotated[int, Meta(ge=0)]], Meta(max_length=2)]
    data: bytes


class InferRequest(Struct, forbid_unknown_fields=True):
    """An infer request with a flat observation (named parts take the reference path).

    The unions keep each value's wire type (an integer ``sent`` stays an int, which the server does not believe,
    exactly as on the reference path); a bool is not an int here, as there.
    """

    type: Literal["infer"]
    seq: int
    obs: msgspec.Raw
    """Decoded apart (``decode_infer``), after its map header is checked."""
    session: Union[bytes, None] = None
    id: Union[int, str, None] = None
    deadline_ms: Union[int, float, msgspec.UnsetType] = msgspec.UNSET
    """Absent: the server's default; an explicit nil is refused on the reference path, as it always was."""
    sent: Union[int, float, None] = None
    config_hash: Union[str, None] = None


_REQUEST = msgspec.msgpack.Decoder(InferRequest)
_ARRAY = msgspec.msgpack.Decoder(WireArray)


def _fixmap(header: int, most: int) -> bool:
    """A MessagePack fixmap of 1 to ``most`` entries. msgspec takes longer maps and repeated keys (the last wins);
    the reference decoder refuses maps over 64 entries. A longer map can only repeat keys here: it goes there."""
    return 0x81 <= header <= 0x80 + most


def decode_infer(frame: bytes) -> tuple[InferRequest, WireArray] | None:
    """The typed request and its observation, or None if the frame is anything but a well-formed flat infer
    request."""
    if len(frame) > MAX_MESSAGE_BYTES or not frame or not _fixmap(frame[0], len(InferRequest.__struct_fields__)):
        return None
    try:
        request = _REQUEST.decode(frame)
        raw = bytes(request.obs)
        if not raw or not _fixmap(raw[0], len(WireArray.__struct_fields__)):
            return None
        return request, _ARRAY.decode(raw)
    except msgspec.MsgspecError:  # malformed, or valid MessagePack of another shape: the reference path decides
        return None
