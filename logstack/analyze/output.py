"""Event output: text blocks for people, JSON for machines. Log content never drives the terminal."""

from __future__ import annotations

import heapq
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO, TextIO

import orjson

from logstack.analyze.event import SEVERITY, Event
from logstack.base.clock import iso
from logstack.base.errors import RuntimeFailure
from logstack.base.terminal import escape, json_escape

# C0/C1 controls, DEL, and bidirectional overrides that could reorder what a reader sees.
RULE = "-" * 100
RUN = 20_000  # text blocks held before they are sorted and spooled (about 10 MB)
SPOOL = 8 << 20  # bytes of JSON output held in memory before the rest waits in a temporary file
RUNS = 32  # text output's spooled runs at most (each holds a file open): more are merged into one


def text_block(event: Event) -> str:
    """One event as a block, like the old analysis script but with correct UTC times."""
    head = f"{event.type} ({event.outcome})"
    if event.flags:
        head += " [" + ", ".join(event.flags) + "]"
    if event.continues:
        head += f" late: continues event {event.continues}"
    rows = [
        f"  TYPE: {escape(head)}",
        f"  HOST: {escape(event.host)}" + (f" ({escape(event.machine_id)})" if event.machine_id else ""),
    ]
    when = iso(event.start) if event.start == event.end else f"{iso(event.start)} .. {iso(event.end)}"
    rows.append(f"  DATE: {when}")
    who = []
    if event.user:
        who.append(f"user {event.user}")
    if event.target_user:
        who.append(f"as {event.target_user}")
    if event.source_ip:
        who.append(f"from {event.source_ip}" + (f" port {event.source_port}" if event.source_port else ""))
    if event.method:
        who.append(f"by {event.method}")
    if who:
        rows.append(f"   WHO: {escape(' '.join(who))}")
    if event.command:
        rows.append(f"   CMD: {escape(event.command)}")
    if event.reason:
        rows.append(f"  NOTE: {escape(event.reason)}")
    if event.pids:
        rows.append(f"   PID: {escape(', '.join(event.pids))}")
    for i, line in enumerate(event.lines):
        rows.append(("   MSG: " if i == 0 else "        ") + escape(line.message))
    rows.append(RULE)
    return "\n".join(rows) + "\n"


def summary(severities: Counter[str]) -> str:
    """The closing line of a text report: how many events, by severity (how many of each), most severe first."""
    levels = sorted(SEVERITY, key=SEVERITY.__getitem__, reverse=True)
    counts = dict.fromkeys((level for level in levels if level != "never"), 0)
    counts.update(severities)
    total = sum(counts.values())
    by_level = ", ".join(f"{n} {level}" for level, n in counts.items() if n)
    noun = "event" if total == 1 else "events"
    return f"{total} {noun}: {by_level}" if total else "No events found"


class TextBlocks:
    """Text output's blocks in the order events happened (start, end, id), whatever order they come in: held,
    and every RUN of them sorted and spooled to an unnamed temporary file (readable by this process alone), then
    merged (memory holds a run of rendered blocks, not every event with its lines; past RUNS files they are merged
    into one, so that open files stay few)."""

    def __init__(self, run: int | None = None) -> None:
        self.run = RUN if run is None else run
        self.severities: Counter[str] = Counter()
        self._held: list[tuple[int, int, str, str]] = []
        self._runs: list[IO[bytes]] = []

    def add(self, event: Event) -> None:
        """Hold an event's block."""
        self.add_block(event.start, event.end, event.id, text_block(event), event.severity)

    def add_block(self, start: int, end: int, event_id: str, block: str, severity: str) -> None:
        """Hold a block made already (`text_columns`), with what orders it and its event's severity."""
        self.severities[severity] += 1
        self._held.append((start, end, event_id, block))
        if len(self._held) >= self.run:
            self._held.sort(key=_order)
            with spooling():
                self._runs.append(_spooled(self._held))
                self._held = []
                if len(self._runs) >= RUNS:  # earlier runs first: equal orders stay in the order they came
                    merged = _spooled(heapq.merge(*_read(self._runs), key=_order))
                    self._close()
                    self._runs = [merged]

    def blocks(self) -> Iterator[str]:
        """The blocks, in order (equal orders: in the order they came)."""
        self._held.sort(key=_order)
        try:
            with spooling():
                for *_, block in heapq.merge(*_read(self._runs), self._held, key=_order):
                    yield block
        finally:
            self._close()
            self._held = []

    def _close(self) -> None:
        for spool in self._runs:
            spool.close()
        self._runs = []


@contextmanager
def spooling() -> Iterator[None]:
    """The output's temporary files failing (a full or unwritable directory, too many open files): one line
    naming the directory, not a defect."""
    try:
        yield
    except OSError as exc:
        raise RuntimeFailure(f"cannot keep the output in {tempfile.gettempdir()}: {exc.strerror or exc}") from exc


def _spooled(records: Iterable[tuple[Any, ...]]) -> IO[bytes]:
    """`records` in an unnamed temporary file, one JSON array a line, read from its start."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (open until the blocks are merged)
    spool.writelines(orjson.dumps(record) + b"\n" for record in records)
    spool.seek(0)
    return spool


def _read(spools: list[IO[bytes]]) -> list[Iterator[tuple[Any, ...]]]:
    return [(tuple(orjson.loads(record)) for record in spool) for spool in spools]


def _order(held: tuple[Any, ...]) -> tuple[int, int, str]:
    return held[0], held[1], held[2]


def _lines(spool: IO[bytes]) -> Iterator[bytes]:
    """The spool's lines, its failures as `spooling` names them (writing them out is not its part)."""
    while True:
        with spooling():
            line = spool.readline()
        if not line:
            return
        yield line


class EventWriter:
    """Streams events in one format: text, json (one array) or jsonl."""

    def __init__(self, stream: TextIO, fmt: str) -> None:
        self.stream = stream
        self.fmt = fmt
        self.count = 0
        # JSON (UTF-8 by definition) goes to the byte layer when there is one: no decoding and
        # re-encoding of every event.
        self._bytes: BinaryIO | None = getattr(stream, "buffer", None) if fmt != "text" else None
        if self._bytes is not None:
            stream.flush()
        self._text = TextBlocks()
        # json is one array, written at the end (a run that fails leaves its error document alone on stdout): its
        # events wait in a spool, in memory up to SPOOL bytes, then in an unnamed temporary file
        self._json = tempfile.SpooledTemporaryFile(SPOOL) if fmt == "json" else None  # noqa: SIM115 (until close)

    def _emit(self, data: bytes) -> None:
        if self._bytes is not None:
            self._bytes.write(data)
        else:
            self.stream.write(data.decode())

    def write(self, event: Event) -> None:
        if self.fmt == "text":
            # events complete out of order (a long session ends after many short ones): people read them in
            # the order they happened, so text waits for the end of the run
            self._text.add(event)
        else:
            raw = orjson.dumps(event.as_dict())
            # orjson escapes C0 controls; C1 controls, DEL and bidi overrides become \u escapes here
            if not raw.isascii() or b"\x7f" in raw:
                raw = json_escape(raw.decode()).encode()
            if self._json is not None:
                with spooling():
                    self._json.write(raw + b"\n")
            else:
                self._emit(raw + b"\n")
        self.count += 1

    def write_blocks(self, blocks: Iterable[tuple[int, int, str, str, str]]) -> None:
        """Events already made text blocks (`text_columns`): (start, end, id, block, severity) each; text."""
        if self.fmt != "text":
            raise ValueError("text blocks are text output's")
        for block in blocks:
            self._text.add_block(*block)
            self.count += 1

    def write_json_lines(self, data: bytes) -> None:
        """Events already written as JSON lines, escaped as `write` escapes them (`event_json`); json or jsonl."""
        if self.fmt == "text":
            raise ValueError("text output is made of events, not of their JSON")
        lines = [line for line in data.split(b"\n") if line]
        if self._json is not None and lines:
            with spooling():
                self._json.write(b"\n".join(lines) + b"\n")
        elif lines:
            self._emit(data if data.endswith(b"\n") else data + b"\n")
        self.count += len(lines)

    def close(self) -> None:
        if self._json is not None:
            with spooling():
                self._json.seek(0)
            self._emit(b"[\n" if self.count else b"[]\n")
            chunk: list[bytes] = []
            for n, line in enumerate(_lines(self._json)):
                chunk.append(b",\n" + line[:-1] if n else line[:-1])
                if len(chunk) >= 4096:
                    self._emit(b"".join(chunk))
                    chunk.clear()
            self._emit(b"".join(chunk) + (b"\n]\n" if self.count else b""))
            self._json.close()
            self._json = None
        elif self.fmt == "text" and self.count == 0:
            self.stream.write("No events found\n")
        elif self.fmt == "text":
            self.stream.writelines(self._text.blocks())
            self.stream.write(summary(self._text.severities) + "\n")
        if self._bytes is not None:
            self._bytes.flush()
