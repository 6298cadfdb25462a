"""Frames survive any split of the byte stream: the supervisor reads whatever arrived."""

from __future__ import annotations

import pytest

from isolator._wire import frames as _protocol

HELLO = (1234).to_bytes(8, "big") + (4096).to_bytes(8, "big")  # its pid and RSS
FRAMES = [(_protocol.HELLO, HELLO), (_protocol.RESULT, b""),
          (_protocol.RAISED, b"x" * 70_000), (_protocol.IDLE, (5).to_bytes(8, "big"))]
STREAM = b"".join(b"".join(_protocol.frame(tag, body)) for tag, body in FRAMES)


@pytest.mark.parametrize("piece", [1, 2, 8, 9, 10, 4096, len(STREAM)])
def test_frames_come_out_whole_and_in_order_however_the_stream_is_cut(piece: int) -> None:
    reader = _protocol.FrameReader()
    got = []
    for start in range(0, len(STREAM), piece):
        got += reader.feed(STREAM[start:start + piece])
    assert got == FRAMES


def test_a_partial_frame_waits_for_the_rest() -> None:
    reader = _protocol.FrameReader()
    assert reader.feed(STREAM[:5]) == []
    assert reader.feed(STREAM[5:25]) == [FRAMES[0]]
