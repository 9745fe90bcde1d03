"""A total time limit for a fetch: at its end, every socket the fetch opened is shut down.

A socket timeout bounds one wait, not a fetch: a server that sends a byte a second (the
status line, the headers or the body) never lets it fire. The connections a fetch opens on
this thread hand their sockets to its `Deadline` (`current_deadline`), whose timer shuts
them down when the time is up; whatever read was blocked ends, and the fetch sees `expired`.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
import time
from collections.abc import Iterator


class Deadline:
    """One fetch's total time limit; `watch` the sockets it opens, `cancel` when done."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if not self.expired:
                return
        _shut(sock)  # opened just as the time ran out

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing is waiting on it
        sock.shutdown(socket.SHUT_RDWR)


# The deadline of the fetch running on this thread, for the connections it opens.
_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "fetch_deadline", default=None
)


def current_deadline() -> Deadline | None:
    """The deadline of the fetch running on this thread, if it has one."""
    return _CURRENT.get()


@contextlib.contextmanager
def deadline_for_this_thread(seconds: float | None) -> Iterator[Deadline | None]:
    """A `Deadline` of `seconds` (None: no limit) for the sockets opened in the block."""
    limit = Deadline(seconds) if seconds is not None else None
    token = _CURRENT.set(limit)
    try:
        yield limit
    finally:
        _CURRENT.reset(token)
        if limit is not None:
            limit.cancel()
