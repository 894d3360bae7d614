"""Length-prefixed framing, sans-I/O: bytes in, frames out.

Wire format: 4-byte big-endian payload length, then the payload. The decoder knows nothing about
sockets, so the same class is driven by the asyncio link and by property tests with arbitrary
chunking. The size limit is checked as soon as a header is complete, before any payload is buffered,
so a peer announcing a huge frame costs us four bytes, not the announced size.
"""

from __future__ import annotations

import struct

from chain.block import MAX_BLOCK_BYTES

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size
FRAME_MARGIN = 1024 * 1024
"""Room for the envelope and a commit certificate around the largest block."""
DEFAULT_MAX_FRAME = MAX_BLOCK_BYTES + FRAME_MARGIN


class FrameError(ValueError):
    """The byte stream is not valid framing; the link must be dropped (no way to resynchronise)."""


class FrameTooLarge(FrameError):
    """A frame header announces more than the configured maximum."""


class EmptyFrame(FrameError):
    """A zero-length frame: never produced by us (every message has an envelope), so a protocol error."""


def encode_frame(payload: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """Prefix `payload` with its length; refuse what the receiver would refuse."""
    n = len(payload)
    if n == 0:
        raise EmptyFrame("empty frame")
    if n > max_frame:
        raise FrameTooLarge(f"frame of {n} bytes exceeds limit {max_frame}")
    return HEADER.pack(n) + payload


class FrameDecoder:
    """Incremental frame decoder. Call `feed(data)` with whatever arrived; get complete frames back.

    After a FrameError the decoder is poisoned (every later call raises again): the stream position
    is lost, so the only safe action is to close the connection.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need: int | None = None  # payload length of the frame being assembled, once known
        self._error: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held but not yet returned as frames (bounded by max_frame + header + one chunk)."""
        return len(self._buf)

    def append(self, data: bytes) -> None:
        """Buffer `data` without parsing; pair with `next_frame` to take frames one at a time."""
        if self._error is not None:
            raise self._error
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next complete frame, or None if more bytes are needed. Raises FrameError on bad framing."""
        if self._error is not None:
            raise self._error
        if self._need is None:
            if len(self._buf) < HEADER_SIZE:
                return None
            (n,) = HEADER.unpack_from(self._buf, 0)
            if n == 0:
                self._error = EmptyFrame("empty frame")
                raise self._error
            if n > self.max_frame:
                self._error = FrameTooLarge(f"frame of {n} bytes exceeds limit {self.max_frame}")
                raise self._error
            del self._buf[:HEADER_SIZE]
            self._need = n
        if len(self._buf) < self._need:
            return None
        frame = bytes(self._buf[: self._need])
        del self._buf[: self._need]
        self._need = None
        return frame

    def feed(self, data: bytes) -> list[bytes]:
        """Buffer `data` and return every frame now complete, in order.

        Good frames that precede bad framing in the same call are returned, not lost; the
        FrameError is then raised by the next call (the decoder stays poisoned).
        """
        self.append(data)
        frames: list[bytes] = []
        try:
            while (frame := self.next_frame()) is not None:
                frames.append(frame)
        except FrameError:
            if not frames:
                raise
        return frames
