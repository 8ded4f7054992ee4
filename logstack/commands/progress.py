"""A progress line on stderr for long work, only when stderr is a terminal (never in logs or pipes)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from logstack.base.terminal import escape


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
