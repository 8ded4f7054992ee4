"""A total time limit for one exchange with a peer, whatever the peer does byte by byte.

A socket timeout bounds each read: a peer that sends one byte every half second resets it for ever (a
webhook held `alerts test` past 45 s with `timeout: 2`). `within` bounds the whole exchange instead.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """The exchange did not finish in its time."""


def within(seconds: float, work: Callable[[], T]) -> T:
    """`work()`'s result, or DeadlineExceeded when it has not finished after `seconds`.

    The work runs in a daemon thread; one that overruns is left to its own socket timeouts and ends with
    the process at the latest, and whatever it would still deliver is delivered again later (callers keep
    what was not confirmed, and name each delivery so that a repeat can be dropped).
    """
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # handed to the caller's thread as it is
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name="logstack-deadline", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise DeadlineExceeded(f"no answer within {seconds:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]


def within_exchange(seconds: float, conn: Any, work: Callable[[], T]) -> T:
    """`within` for an http.client connection: the work closes it when done; when the deadline passes first,
    its socket is shut down (which the worker's blocked read returns from), never closed from this thread:
    closing a response waits for the lock the reading thread holds."""

    def owned() -> T:
        try:
            return work()
        finally:
            conn.close()

    try:
        return within(seconds, owned)
    except DeadlineExceeded:
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise
