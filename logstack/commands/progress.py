"""A progress line on stderr for long work, only when stderr is a terminal (never in logs or pipes)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

from logstack.base.terminal import escape

T = TypeVar("T")
_EVERY = 4096  # items between looks at the clock: the count costs nothing measurable per line


class Progress:
    """`what: N items` rewritten in place at most every `interval` seconds; cleared at the end."""

    def __init__(self, what: str, stream: TextIO | None = None, interval: float = 1.0) -> None:
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.shown = False
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._next = time.monotonic() + interval

    def update(self, count: int, unit: str = "lines") -> None:
        now = time.monotonic()
        if self.enabled and now >= self._next:
            self._next = now + self.interval
            self.stream.write(f"\r\x1b[K{escape(self.what)}: {count:,} {unit}")
            self.stream.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def counted(items: Iterable[T], progress: Progress, unit: str = "lines") -> Iterator[T]:
    """`items`, reporting how many have passed every few thousand."""
    if not progress.enabled:
        yield from items
        return
    try:
        for count, item in enumerate(items, 1):
            if count % _EVERY == 0:
                progress.update(count, unit)
            yield item
    finally:  # also when the run fails: the error's line starts on a clean line
        progress.done()


def with_progress(source: Callable[[int | None, int | None], Iterable[T]], progress: Progress) -> Callable:
    """A line source whose lines are counted on the progress line."""

    def wrapped(start: int | None, end: int | None) -> Iterator[T]:
        return counted(source(start, end), progress)

    return wrapped


class Ticker:
    """`what (N s)` on the progress line while one long step runs (a COPY the store does in one statement)."""

    def __init__(self, what: str, stream: TextIO | None = None, interval: float = 1.0) -> None:
        self.progress = Progress(what, stream, interval=0)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Ticker:
        if self.progress.enabled:
            start = time.monotonic()

            def tick() -> None:
                while not self._stop.wait(self.interval):
                    self.progress.update(int(time.monotonic() - start), "s")

            self._thread = threading.Thread(target=tick, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.progress.done()
