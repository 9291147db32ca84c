"""Length-prefixed frames: a 4-byte big-endian length, then that many bytes of message.

Owns: framing and the per-frame size limit. A frame over the limit is refused before it is buffered.
"""

from __future__ import annotations

from shoal.proto.errors import LocalProtocolError, RemoteProtocolError

MAX_FRAME = 4 << 20  #: content travels in pieces well below this
_HEADER = 4


def frame(payload: bytes, limit: int = MAX_FRAME) -> bytes:
    if len(payload) > limit:
        raise LocalProtocolError(f"frame of {len(payload)} bytes exceeds the limit of {limit}")
    return len(payload).to_bytes(_HEADER, "big") + payload


class FrameDecoder:
    """Feed bytes in, take whole frames out."""

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> bytes | None:
        if len(self._buf) < _HEADER:
            return None
        size = int.from_bytes(self._buf[:_HEADER], "big")
        if size > self.limit:
            raise RemoteProtocolError(f"frame of {size} bytes exceeds the limit of {self.limit}")
        if len(self._buf) < _HEADER + size:
            return None
        payload = bytes(self._buf[_HEADER : _HEADER + size])
        del self._buf[: _HEADER + size]
        return payload

    @property
    def buffered(self) -> int:
        return len(self._buf)
