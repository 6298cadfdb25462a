"""Frames between the engine and a child: length-prefixed, on a socket.

Each frame is a 9-byte header (one tag byte, an 8-byte big-endian length) and a body.
Bodies are pickles made by ``pickling``; a RESULT or TASK body is the user's pickle
itself, so a 1 GiB result is never pickled twice. The child's stdout and stderr never
touch this socket.

    child                          engine
      │ ── HELLO(pid, rss) ────────▶ │   handshake: the child is alive; it is watched
      │ ◀──────────── TASK(fn,args) ─│   a fresh child's is written before the fork,
                                          a reused worker's after its HELLO
      │ ── RESULT(pickle) ─────────▶ │   or
      │ ── RAISED(exc, traceback) ─▶ │
      │ ── [LEARNED(modules)] ─────▶ │   what the task imported that the child did not
                                          have: the zygote preloads it next time
      │ ── IDLE(rss) ──────────────▶ │   reused workers only: tidied, taking the next
      │ ◀─── [CAPTURE] TASK ... / EOF │   TASK (after CAPTURE(path) at the deep forensics
                                           level); EOF retires the worker

A reused worker may find its next TASKs already waiting (the engine sends short tasks
ahead), so it answers every TASK in order; the engine matches outcomes to tasks by
that order. A worker whose task breached the soft limit sends that outcome and exits
without IDLE: the TASKs behind it never started and run on another worker.
"""

from __future__ import annotations

import array
import socket
import struct

HELLO = 1
TASK = 2
RESULT = 3
RAISED = 4
IDLE = 5  # a reused worker finished a task and tidied up; body: its RSS, 8 bytes
CAPTURE = 6  # to a reused worker, before a TASK: track it with memray into this file
LEARNED = 7  # after an outcome: the modules the task imported (newline-separated names)
FROM_CHILD = frozenset({HELLO, RESULT, RAISED, IDLE, LEARNED})  # all a child may send

_HEADER = struct.Struct("!BQ")
_CHUNK = 1 << 20
_SMALL = 1 << 16  # bodies up to this size are copied behind their header and sent whole


def header(tag: int, size: int) -> bytes:
    """The 9 bytes that precede a body of ``size`` bytes."""
    return _HEADER.pack(tag, size)


def send_frame(sock: socket.socket, tag: int, body: bytes = b"") -> None:
    """Send one whole frame in one write; blocks until the kernel has taken it.

    One write, because the peer wakes up for each: a header sent on its own costs the
    reader a wake-up that finds half a frame.
    """
    head = _HEADER.pack(tag, len(body))
    if len(body) <= _SMALL:
        sock.sendall(head + body)
        return
    sent = sock.sendmsg([head, body])  # gathered: a big body is not copied to prepend 9 bytes
    if sent < len(head):
        sock.sendall(head[sent:])
        sent = len(head)
    sock.sendall(memoryview(body)[sent - len(head):])


def send_buffers(sock: socket.socket, buffers: list[bytes]) -> None:
    """Send the buffers in order as one stream, in as few writes as the socket allows:
    small ones joined (one write, one wake-up of the peer), a big body gathered with
    ``sendmsg`` rather than copied."""
    total = sum(len(b) for b in buffers)
    if total <= _SMALL:
        sock.sendall(b"".join(buffers))
        return
    views = [memoryview(b) for b in buffers if b]
    while views:
        sent = sock.sendmsg(views)
        while sent:
            if sent < len(views[0]):
                views[0] = views[0][sent:]
                break
            sent -= len(views[0])
            views.pop(0)


def frame(tag: int, body: bytes) -> list[bytes]:
    """A frame as the buffers a non-blocking writer sends: one when it is small."""
    head = _HEADER.pack(tag, len(body))
    if len(body) <= _SMALL:
        return [head + body]
    return [head, body]


def recv_fds(sock: socket.socket, size: int, most: int, flags: int = 0
             ) -> tuple[bytes, list[int]]:
    """One message and the fds passed with it, each close-on-exec from the moment it
    exists (``MSG_CMSG_CLOEXEC``): a program the receiver execs must not inherit them.
    (The stdlib's ``socket.recv_fds`` drops its ``flags`` argument on this Python, so
    ``MSG_DONTWAIT`` through it blocks.)"""
    data, ancillary, _, _ = sock.recvmsg(size, socket.CMSG_LEN(most * _FD.itemsize),
                                         socket.MSG_CMSG_CLOEXEC | flags)
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


_FD = array.array("i")


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:], min(size - got, _CHUNK))
        if count == 0:
            raise EOFError("the peer closed the connection mid-frame")
        got += count
    return bytes(buffer)


def recv_frame(sock: socket.socket) -> tuple[int, bytes]:
    """Block until one whole frame has arrived; EOFError when the peer has gone."""
    tag, size = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    return tag, _recv_exactly(sock, size) if size else b""


class FrameError(Exception):
    """The peer sent what no frame of ours is: an unknown tag, or more than it may."""


class FrameReader:
    """Reassembles frames from whatever pieces a non-blocking reader got.

    ``tags`` are the frames the peer may send and ``limit`` the largest body it may
    announce: a header that breaks either raises ``FrameError`` before a byte of its
    body is buffered, so a peer cannot make the reader hold more than it allows.
    """

    def __init__(self, tags: frozenset[int] | None = None, limit: int | None = None) -> None:
        self._buffer = bytearray()
        self._tags, self.limit = tags, limit

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames completed by ``data``, in order; a partial one waits for the rest."""
        buffer = self._buffer
        buffer += data
        frames = []
        start, end = 0, len(buffer)
        while end - start >= _HEADER.size:
            tag, size = _HEADER.unpack_from(buffer, start)
            if self._tags is not None and tag not in self._tags:
                raise FrameError(f"a frame with the unknown tag {tag}")
            if self.limit is not None and size > self.limit:
                raise FrameError(f"a frame of {size} bytes, more than the {self.limit} "
                                 "it may send")
            stop = start + _HEADER.size + size
            if stop > end:
                break
            frames.append((tag, bytes(buffer[start + _HEADER.size : stop])))
            start = stop
        del buffer[:start]  # once per read, not once per frame
        return frames
