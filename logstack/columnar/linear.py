"""The message table's buckets in the syntax of Rust's `regex` crate, which polars runs: matching in time
linear in the text by construction (a finite automaton, no backtracking), whatever a line holds.

The table's patterns are written for Python's `re` with possessive runs (`\\S++`) so that the backtracking
engine stays linear; the automaton needs no such care, and the translation drops them. The translated
pattern is read only on ASCII text (the batch classifier leaves other lines to the line-by-line reader),
where the two engines agree on every class but one: Python's `\\s` also takes the separators \\x1c-\\x1f.
"""

from __future__ import annotations

from dataclasses import dataclass

from logstack.base.errors import LogstackError
from logstack.classify.messages import Message
from logstack.classify.rules import Bucket

# Python's `\s` on ASCII text (str.isspace()): Rust's Unicode White_Space lacks the four separators
SPACE = r"\s\x1c-\x1f"
NON_SPACE = rf"[^{SPACE}]"  # Python's `\S` on ASCII text, for patterns written for the automaton


class UntranslatablePattern(LogstackError):
    """A pattern uses what the linear-time engine does not have (look-around, back-references)."""


def rust_pattern(python: str) -> str:
    """A Python `re` pattern (DOTALL) in Rust regex syntax, with the same matches on ASCII text."""
    out: list[str] = ["(?s)"]
    i, n = 0, len(python)
    while i < n:
        char = python[i]
        if char == "\\":
            escape = python[i : i + 2]
            out.append(_escape(escape, in_class=False))
            i += 2
        elif char == "[":
            end = _class_end(python, i)
            out.append(_class(python[i : end + 1]))
            i = end + 1
        elif char == "(" and python.startswith(("(?=", "(?!", "(?<=", "(?<!", "(?>"), i):
            raise UntranslatablePattern(f"look-around or atomic group at {i} of {python[:80]!r}")
        elif char in "+*?}" and python[i + 1 : i + 2] == "+":
            out.append(char)  # a possessive run: the automaton never backtracks, greedy is the same
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _escape(escape: str, in_class: bool) -> str:
    if escape == r"\Z":
        return r"\z"
    if escape == r"\s":
        return SPACE if in_class else f"[{SPACE}]"
    if escape == r"\S":
        if in_class:
            raise UntranslatablePattern(r"\S inside a character class")
        return f"[^{SPACE}]"
    if len(escape) == 2 and escape[1].isdigit() and escape[1] != "0":
        raise UntranslatablePattern(f"back-reference {escape}")
    return escape


def _class_end(pattern: str, start: int) -> int:
    i = start + 1
    if pattern[i : i + 1] == "^":
        i += 1
    if pattern[i : i + 1] == "]":  # a leading `]` is a member, not the end
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i
        if pattern[i] == "[":
            raise UntranslatablePattern(f"nested class at {i} of {pattern[:80]!r}")
        i += 1
    raise UntranslatablePattern(f"unterminated class in {pattern[:80]!r}")


def _class(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            out.append(_escape(text[i : i + 2], in_class=True))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class LinearBucket:
    """One bucket's rows as Rust patterns, in the alternation's order: `alternatives[i]` is row i's pattern alone
    (anchored) and `slots[i]` names, in FACT_SLOTS order, the group each value is read from (None: the row
    does not read it)."""

    rows: tuple[Message, ...]
    slots: tuple[tuple[str | None, ...], ...]
    alternatives: tuple[str, ...]


def linear_bucket(bucket: Bucket) -> LinearBucket:
    """The rows of `bucket` (same order, same group names), for the automaton."""
    names = {number: name for name, number in bucket.pattern.groupindex.items()}
    alternatives, rows, slots = [], [], []
    for index, (_, (message, groups)) in enumerate(sorted(bucket.rows.items())):
        body = message.pattern().removeprefix("^")
        renamed = body.replace("(?P<", f"(?P<g{index}_")
        alternatives.append(rust_pattern(renamed).removeprefix("(?s)"))
        rows.append(message)
        slots.append(tuple(names.get(group) for group in groups))
    return LinearBucket(tuple(rows), tuple(slots), tuple(f"(?s)^(?:{body})" for body in alternatives))
