"""Batches of lines in columns: lines made into batches, batches cut to a size (lines, and characters of their
messages), and the next batch made while the caller works on this one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from logstack.journal.columns import line_columns
from logstack.journal.line import Line

if TYPE_CHECKING:
    import polars as pl

# Lines a batch, and characters of their messages: the working set of a batch (its frames, the events it
# closes) is most of a run's memory, and a line may be 14 KB or more (any local user can log such lines).
BATCH = 40_000
BATCH_TEXT = 16 << 20
T = TypeVar("T")


def line_batches(lines: Iterable[Line], batch: int = BATCH, text: int = BATCH_TEXT) -> Iterator[pl.DataFrame]:
    """Lines in columns, batches of at most `batch` lines and `text` characters of messages (or one line)."""
    chunk: list[Line] = []
    size = 0
    for line in lines:
        if chunk and (len(chunk) >= batch or size + len(line.message) > text):
            yield line_columns(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line.message)
    if chunk:
        yield line_columns(chunk)


def at_most(batches: Iterable[pl.DataFrame], batch: int, text: int) -> Iterator[pl.DataFrame]:
    """`batches` cut where they hold more than `batch` lines (an export's chunk of short lines) or `text`
    characters of messages (the store's rows: any local user can log lines of 48 KB), as `line_batches` cuts."""
    for part in batches:
        ends = part["message"].str.len_chars().cum_sum()
        start, done = 0, 0
        while start < len(part):
            # the lines up to `batch` of them, or until the text passes `text` (one line at least)
            end = min(start + batch, max(start + 1, int(ends.search_sorted(done + text, side="right"))))
            yield part.slice(start, end - start)
            start, done = end, int(ends[end - 1])


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """`items`, the next one made in a thread while the caller works on this one: reading and parsing (Python)
    overlap the stages' column work (polars, which lets go of the interpreter while it runs)."""
    with ThreadPoolExecutor(1, thread_name_prefix="logstack-read") as pool:
        coming = pool.submit(next, items, None)
        while (item := coming.result()) is not None:
            coming = pool.submit(next, items, None)
            yield item
