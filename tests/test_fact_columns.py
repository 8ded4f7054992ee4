"""Differential: the classifier over columns (polars, Rust's linear-time regex) gives, line for line, the facts
the line-by-line classifier gives: on every message table row rendered with sample and generated values, on
generated text, on every string the test suite writes, and in batches that mix programs and lines."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import hypothesis
import polars as pl
import pytest
from hypothesis import strategies as st

from logstack.classify.classifier import classify
from logstack.classify.messages import load_table
from logstack.columnar.facts import fact_columns, facts_of
from logstack.columnar.linear import UntranslatablePattern, rust_pattern
from tests.test_message_table import SAMPLES, identifier, render

TABLE = load_table()
ROWS = [m for m in TABLE if m.compiled]
SSH = ("sshd", "sshd-session", "sshd-auth")
OTHERS = ("sudo", "su", "systemd-logind", "useradd", "pkexec", "polkitd", "login", "doas", "kernel", "CRON")


def _same(identifiers: list[str], messages: list[str]) -> None:
    got = facts_of(fact_columns(identifiers, messages))
    want = [classify(ident, message) for ident, message in zip(identifiers, messages, strict=True)]
    assert len(got) == len(want)
    for ident, message, a, b in zip(identifiers, messages, got, want, strict=True):
        assert a == b, (ident, message)


def _variants(line: str) -> list[str]:
    """The shapes sshd's monitor and its log levels give one line."""
    return [line, f"{line} [preauth]", f"error: {line}", f"fatal: {line} [preauth]", f"Critical: {line}"]


def test_every_row_rendered_with_samples():
    identifiers, messages = [], []
    for row in ROWS:
        for line in _variants(render(row)):
            for ident in (identifier(row), *SSH):
                identifiers.append(ident)
                messages.append(line)
    assert len(messages) > 3000
    _same(identifiers, messages)


_DELIMITERS = " \t\n\x0b\x1c\x1f:;,.%[]()'`\"/=@"


def test_every_row_with_a_delimiter_in_each_value():
    """Where a value stops is where the engines could part: each value of each row holds each delimiter."""
    identifiers, messages = [], []
    for row in ROWS:
        for name in {*row.fields, "user", "port"} - {"-"}:
            for char in _DELIMITERS:
                for value in (f"a{char}b", char, f"{char}a"):
                    identifiers.append(identifier(row))
                    messages.append(render(row, {**SAMPLES, name: value}))
    _same(identifiers, messages)


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_ascii = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=40)
# the characters the table's classes and delimiters turn on
_tricky = st.text(alphabet=" \t\n\x0b\x1c\x1f:;,.%-_[]()'`\"/=0123456789abcdefABCDEF", max_size=30)
_value = st.one_of(
    _text, _ascii, _tricky, st.sampled_from(["", " ", "a b", "x port 22: y", " ssh2: ", "1.2.3.4", "%s", "::1"])
)
_address = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str), st.ip_addresses(v=6).map(lambda a: f"{a}%eth0")
)
_port = st.one_of(st.integers(0, 70000).map(str), st.sampled_from(["00022", "999999", "0"]))


@st.composite
def _lines(draw: st.DrawFn) -> tuple[str, str]:
    row = draw(st.sampled_from(ROWS))
    values = {
        **SAMPLES,
        "user": draw(_value),
        "login": draw(_value),
        "ip": draw(_address),
        "host": draw(st.one_of(_address, _value)),
        "port": draw(_port),
        "reason": draw(_value),
        "method": draw(st.one_of(st.just("password"), _value)),
        "command": draw(_value),
    }
    line = draw(st.sampled_from(_variants(render(row, values))))
    ident = draw(st.sampled_from((identifier(row), *SSH)))
    return ident, line


_free = st.tuples(
    st.sampled_from((*SSH, *OTHERS)),
    st.one_of(
        _ascii,
        _text,
        st.builds(
            lambda a, b: f"{a} {b}", st.sampled_from(["Failed", "Accepted", "Invalid", "Connection", "0"]), _ascii
        ),
    ),
)


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(batch=st.lists(st.one_of(_lines(), _free), min_size=1, max_size=120))
def test_generated_batches(batch):
    _same([ident for ident, _ in batch], [line for _, line in batch])


def _suite_strings() -> list[str]:
    """Every string constant in the test suite: the journal lines its tests write, and much else."""
    found: set[str] = set()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 4096:
                found.add(node.value)
    return sorted(found)


def test_every_string_of_the_test_suite():
    strings = _suite_strings()
    assert len(strings) > 3000
    identifiers = [ident for ident in SSH for _ in strings]
    _same(identifiers, strings * len(SSH))


def test_a_long_hostile_line_costs_what_a_line_of_its_length_costs():
    """14 KB: beyond the rules' cap the line-by-line reader leaves such lines unread; the automaton does not
    care what the line holds. The hostile shapes are those that made backtracking engines stall."""
    size = 14 * 1024
    benign = ("Accepted password for alice from 203.0.113.9 port 22 ssh2" + " x" * size)[:size]
    hostile = [
        ("Failed password for " + "x from 1 port 1 " * size)[:size],
        ("Invalid user " + " from " * size)[:size],
        ("Connection closed by invalid user " + "a " * size)[:size],
        ("User " + "a from b " * size)[:size],
    ]

    def cost(line: str) -> float:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            fact_columns(["sshd-session"] * 200, [line] * 200, max_length=None)
            best = min(best, time.perf_counter() - start)
        return best

    base = cost(benign)
    assert not fact_columns(["sshd"], [benign], max_length=None)["truncated"].any()
    for line in hostile:
        assert cost(line) < 3 * base + 0.01, line[:40]


@pytest.mark.parametrize(
    ("python", "rust"),
    [
        (r"a\Z", r"(?s)a\z"),
        (r"\S++ \d++", r"(?s)[^\s\x1c-\x1f]+ \d+"),
        (r"[^\s:]++x", r"(?s)[^\s\x1c-\x1f:]+x"),
        (r"[+?]+", r"(?s)[+?]+"),
        (r"\++", r"(?s)\++"),
        (r"a{1,45}+", r"(?s)a{1,45}"),
    ],
)
def test_rust_pattern_translation(python, rust):
    assert rust_pattern(python) == rust


@pytest.mark.parametrize("python", [r"(?<!\w)x", r"(?=a)", r"(a)\1", r"[a"])
def test_what_the_automaton_lacks_is_refused(python):
    with pytest.raises(UntranslatablePattern):
        rust_pattern(python)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(text=_ascii)
def test_space_classes_agree_on_ascii(text):
    """Python's `\\s` takes \\x1c-\\x1f too; the translation keeps that."""
    for python in (r"\s+", r"\S+", r"[^\s:]+"):
        want = [m.group() for m in re.finditer(python, text, re.DOTALL)]
        got = pl.Series([text]).str.extract_all(rust_pattern(python)).to_list()[0]
        assert got == want, python
