"""Event output: text blocks for people, JSON for machines. Log content never drives the terminal."""

from __future__ import annotations

from typing import BinaryIO, TextIO

import orjson

from logstack.analyze.event import SEVERITY, Event
from logstack.base.clock import iso
from logstack.base.terminal import UNSAFE, escape

# C0/C1 controls, DEL, and bidirectional overrides that could reorder what a reader sees.
RULE = "-" * 100


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


def summary(events: list[Event]) -> str:
    """The closing line of a text report: how many events, by severity, most severe first."""
    counts = {level: 0 for level in sorted(SEVERITY, key=SEVERITY.__getitem__, reverse=True) if level != "never"}
    for event in events:
        counts[event.severity] = counts.get(event.severity, 0) + 1
    by_level = ", ".join(f"{n} {level}" for level, n in counts.items() if n)
    noun = "event" if len(events) == 1 else "events"
    return f"{len(events)} {noun}: {by_level}" if events else "No events found"


def _json_escape(data: str) -> str:
    if not UNSAFE.search(data):
        return data
    return UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", data)


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
        self._held: list[Event] = []
        self._held_json: list[bytes] = []

    def _emit(self, data: bytes) -> None:
        if self._bytes is not None:
            self._bytes.write(data)
        else:
            self.stream.write(data.decode())

    def write(self, event: Event) -> None:
        if self.fmt == "text":
            # events complete out of order (a long session ends after many short ones): people read them in
            # the order they happened, so text waits for the end of the run
            self._held.append(event)
        else:
            raw = orjson.dumps(event.as_dict())
            # orjson escapes C0 controls; C1 controls, DEL and bidi overrides become \u escapes here
            if not raw.isascii() or b"\x7f" in raw:
                raw = _json_escape(raw.decode()).encode()
            if self.fmt == "json":
                # one array, written at the end: a run that fails leaves its error document alone on stdout
                self._held_json.append(raw)
            else:
                self._emit(raw + b"\n")
        self.count += 1

    def write_json_lines(self, data: bytes) -> None:
        """Events already written as JSON lines, escaped as `write` escapes them (`event_json`); json or jsonl."""
        if self.fmt == "text":
            raise ValueError("text output is made of events, not of their JSON")
        lines = [line for line in data.split(b"\n") if line]
        if self.fmt == "json":
            self._held_json += lines
        elif lines:
            self._emit(data if data.endswith(b"\n") else data + b"\n")
        self.count += len(lines)

    def close(self) -> None:
        if self.fmt == "json":
            self._emit(b"[\n" + b",\n".join(self._held_json) + b"\n]\n" if self._held_json else b"[]\n")
            self._held_json.clear()
        elif self.fmt == "text" and self.count == 0:
            self.stream.write("No events found\n")
        elif self.fmt == "text":
            self._held.sort(key=lambda e: (e.start, e.end, e.id))
            for event in self._held:
                self.stream.write(text_block(event))
            self.stream.write(summary(self._held) + "\n")
            self._held.clear()
        if self._bytes is not None:
            self._bytes.flush()
