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
    got = facts_of(fact_columns(identifiers, messages, min_batch=0))
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


_kv_key = st.one_of(st.sampled_from(["ruser", "logname", "user", "rhost", "tty", "uid", "xuser"]), _tricky)
_pam_rest = st.one_of(
    st.builds(
        lambda lead, pairs, tail: (
            f"{lead}authentication failure{tail};" + "".join(f"{sep}{key}={value}" for sep, key, value in pairs)
        ),
        st.sampled_from(["", "2 more ", "x "]),
        st.lists(st.tuples(st.sampled_from([" ", "", ";", "  ", "\x1c", "="]), _kv_key, _tricky), max_size=8),
        st.sampled_from(["", "s", "ss"]),
    ),
    st.builds(
        lambda user, uid, by: f"session opened for user {user}{uid} by {by}",
        _tricky,
        st.sampled_from(["", "(uid=0)", "(uid=x)"]),
        st.one_of(_tricky, st.just("alice(uid=1000)")),
    ),
    st.builds(
        lambda user, end: f"session closed for user {user}{end}", _tricky, st.sampled_from(["", "\n", "(uid=1)"])
    ),
    st.builds(lambda user: f"Consecutive login failures for user {user} account temporarily locked", _tricky),
    st.builds(lambda user: f"password changed for {user}", _tricky),
    _ascii,
    _tricky,
)
_pam_lines = st.builds(
    lambda module, service, kind, rest, end: f"{module}({service}:{kind}): {rest}{end}",
    st.sampled_from(["pam_unix", "pam_faillock", "pam_sss", "pam_ldap", "pam_access", "pam_systemd", "pam_x"]),
    st.one_of(st.sampled_from(["sshd", "sudo", "su", "login", "su-l", "sudo-i", "polkit-1"]), _tricky),
    st.sampled_from(["auth", "session", "account", "password", "chauthtok", "x"]),
    _pam_rest,
    st.sampled_from(["", "\n", " ", "\nx"]),
)


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(
    batch=st.lists(st.tuples(st.sampled_from([*SSH, "sudo", "su", "login", "pkexec", "cron"]), _pam_lines), max_size=80)
)
def test_generated_pam_lines(batch):
    _same([ident for ident, _ in batch], [line for _, line in batch])


_pairs = st.lists(
    st.tuples(
        st.sampled_from([" ", "", ";", "  ", "\x1c", "=", ","]),
        st.sampled_from(["ruser", "logname", "user", "rhost", "tty", "xuser", "user_"]),
        st.sampled_from(["", "a", "b", "a=b", "a b", "1.2.3.4", "\x1f"]),
    ),
    max_size=10,
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(batch=st.lists(_pairs, min_size=1, max_size=40))
def test_authentication_failures_read_each_keys_last_value(batch):
    """`dict(KV.findall(...))`: a key repeated gives its last value; a key is a whole word."""
    lines = [
        "pam_unix(sshd:auth): authentication failure;" + "".join(f"{sep}{key}={value}" for sep, key, value in pairs)
        for pairs in batch
    ]
    _same(["sshd"] * len(lines), lines)


def test_many_module_names_cost_what_one_does():
    """Any local user can log under any number of made-up PAM module names; each module with rows is a pass,
    a made-up one none (and the rules keep nothing for it)."""
    from logstack.classify import rules

    def cost(lines: list[str]) -> float:
        start = time.perf_counter()
        fact_columns(["sudo"] * len(lines), lines)
        return time.perf_counter() - start

    one = [f"pam_x(sudo:auth): check pass; user unknown {n}" for n in range(2000)]
    many = [f"pam_x{n:06d}(sudo:auth): check pass; user unknown" for n in range(2000)]
    cost(one)
    assert cost(many) < 5 * cost(one) + 0.05
    _same(["sudo"] * 300, many[:300])
    assert not any(name.startswith("pam_x") for name in rules.TABLE_RULES)


_word = st.one_of(st.from_regex(r"[a-z0-9/_.-]{1,8}", fullmatch=True), _tricky)
_program_lines = st.one_of(
    st.tuples(
        st.just("systemd-logind"),
        st.one_of(
            st.builds(
                lambda s, u, e: f"New session {s} of user {u}.{e}", _word, _word, st.sampled_from(["", "\n", "x"])
            ),
            st.builds(
                lambda w, s, e: f"{w} {s}{e}",
                st.sampled_from(["Removed session", "Session"]),
                _word,
                st.sampled_from([".", " logged out.", " logged out. Waiting", "", "\n."]),
            ),
            _ascii,
        ),
    ),
    st.tuples(
        st.just("systemd-journald"),
        st.builds(lambda n, u: f"Suppressed {n} messages from {u}", st.one_of(_word, st.just("12")), _word),
    ),
    st.tuples(
        st.sampled_from(["su", "runuser"]),
        st.one_of(
            st.builds(
                lambda lead, t, u, tty, end: f"{lead}(to {t}) {u} on {tty}{end}",
                st.sampled_from(["", "+ ", "- ", "-", "FAILED SU ", "FAILED SU", "x "]),
                _word,
                _word,
                _word,
                st.sampled_from(["", "\n", " ", "\nx"]),
            ),
            st.builds(lambda t, u: f"FAILED su for {t} by {u}", _word, _word),
            st.builds(lambda r: f"pam_authenticate: {r}", _word),
            _ascii,
        ),
    ),
)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(batch=st.lists(_program_lines, min_size=1, max_size=60))
def test_generated_logind_journald_and_su_lines(batch):
    _same([ident for ident, _ in batch], [line for _, line in batch])


_sudo_part = st.one_of(
    st.sampled_from(
        [
            "TTY=pts/0",
            "PWD=/home/a ; b",
            "USER=root",
            "USER=",
            "USER=x ; USER=y",
            "COMMAND=a ; USER=b",
            "COMMAND=/bin/sh -c 'a ; b'",
            "COMMAND=",
            "COMMAND=x COMMAND=y",
            "user NOT in sudoers",
            "3 incorrect password attempts",
            "command not allowed",
            "",
            "  ",
            "\x1c",
            "a=b",
            "Key=v",
            "=v",
            "X1=v",
            "1=2",
            "ENV=A=B",
            "(command continued) rest",
        ]
    ),
    _tricky,
)
_sudo_lines = st.builds(
    lambda head, user, sep, parts, tail: head + user + sep + " ; ".join(parts) + tail,
    st.sampled_from(["", "", "(command continued)", " "]),
    st.sampled_from(["alice", "  bob", "a : b", "", " ", "x\x1f"]),
    st.sampled_from([" : ", " : ", ":", " :  ", ""]),
    st.lists(_sudo_part, max_size=7),
    st.sampled_from(["", " ", " ; ", "\n", " \x1c"]),
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(batch=st.lists(_sudo_lines, min_size=1, max_size=60))
def test_generated_sudo_lines(batch):
    """sudo's `USER : KEY=value ; …`: the parts up to the first COMMAND=, a key's last value, the first part
    that is no pair as the reason, a command holding ` ; `, continued lines, and what is no sudo line at all."""
    _same(["sudo"] * len(batch), batch)


_quoted = st.builds(
    lambda q, v: f"{q}{v}{q}", st.sampled_from(["", "'"]), st.sampled_from(["tty1", "/dev/ttyS0", "pts/0"])
)
_login_lines = st.builds(
    lambda shape, tty, who, source, tail: shape.format(tty=tty, who=who, source=source) + tail,
    st.sampled_from(
        [
            "ROOT LOGIN  ON {tty}{source}",
            "root login on {tty}",
            "ROOT LOGIN\x1cON {tty}{source}",
            "LOGIN ON {tty} BY {who}{source}",
            "login on {tty} by {who}",
            "FAILED LOGIN 1 FROM {tty} FOR {who}, Authentication failure",
            "FAILED LOGIN (3) ON {tty}{source} FOR {who}, User not known",
            "FAILED LOGIN 2 ON {tty} FOR {who}",
            "Failed login x on {tty}",
        ]
    ),
    _quoted,
    st.one_of(st.sampled_from(["alice", "'bob'", "a b", "x, y", "", "'", "root FROM 1.2.3.4"]), _tricky),
    st.sampled_from(["", " FROM 192.0.2.7", " FROM '192.0.2.7'", " from host.example", " FROM "]),
    st.sampled_from(["", "\n", " ", ","]),
)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(batch=st.lists(_login_lines, min_size=1, max_size=60))
def test_generated_login_lines(batch):
    """login's root, successful and failed logins in any case, quoted or not, with or without a source."""
    _same(["login"] * len(batch), batch)


def _suite_strings() -> list[str]:
    """Every string constant in the test suite: the journal lines its tests write, and much else."""
    found: set[str] = set()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
            # a journal reader's text has no lone surrogates
            if text is not None and len(text) < 4096 and text.encode(errors="replace") == text.encode(errors="ignore"):
                found.add(text)
    return sorted(found)


def test_every_string_of_the_test_suite():
    strings = _suite_strings()
    assert len(strings) > 3000
    read = (*SSH, "su", "systemd-logind", "systemd-journald", "sudo", "login")
    identifiers = [ident for ident in read for _ in strings]
    _same(identifiers, strings * len(read))


def _padded(head: str, tail: str, size: int, fill: str = "1") -> str:
    return head + fill * (size - len(head) - len(tail)) + tail


def _hostile(size: int) -> dict[str, str]:
    """Lines of `size` characters any local user can log under sshd's name: shapes that stall backtracking
    engines, and lines that match a row whose bucket holds many rows sharing their first words (captures
    across them once cost 1.6 ms for 2 KB)."""
    return {
        "x from 1 port 1": ("Failed password for " + "x from 1 port 1 " * size)[:size],
        " from ": ("Invalid user " + " from " * size)[:size],
        "a ": ("Connection closed by invalid user " + "a " * size)[:size],
        "drop connection": _padded("drop connection #7 from [", "]:50022 on [x]:7 past MaxStartups", size),
        "timeout": _padded("Timeout before authentication for connection from ", ", pid = 7 (early)", size),
        "session": _padded("Starting session: shell for ", " from 203.0.113.9 port 50022 id 0", size),
    }


def _cost(line: str) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        fact_columns(["sshd-session"] * 300, [line] * 300, max_length=None, min_batch=0)
        best = min(best, time.perf_counter() - start)
    return best


def test_a_long_hostile_line_costs_what_a_line_of_its_length_costs():
    """14 KB: beyond the rules' cap the line-by-line reader leaves such lines unread; the automaton reads them
    in time linear in their length, whatever they hold: no dearer than a benign line of that length that a
    row reads (a client's long version string or disconnect text)."""
    size = 14 * 1024
    benign = [
        _padded("Bad protocol version identification '", "' from 203.0.113.9 port 22", size, "x"),
        _padded("Received disconnect from 203.0.113.9 port 22:11: ", " [preauth]", size, "x"),
    ]
    kinds = fact_columns(["sshd"] * len(benign), benign, max_length=None, min_batch=0)["kind"].to_list()
    assert kinds == ["ssh_preauth", "ssh_abandon"]
    base = max(_cost(line) for line in benign)
    kinds = fact_columns(["sshd"] * 300, list(_hostile(size).values()) * 50, max_length=None, min_batch=0)["kind"]
    assert "ssh_other" not in set(kinds[3::6]) | set(kinds[4::6]) | set(kinds[5::6])  # these shapes match rows
    for name, line in _hostile(size).items():
        assert len(line) == size
        # measured 1.5x at most; captures across a bucket cost 25x (the bound leaves room for a loaded machine)
        assert _cost(line) < 3 * base + 0.02, name


def test_small_batches_are_read_line_by_line():
    lines = ["Accepted password for a from 1.2.3.4 port 22 ssh2", "x", "Invalid user x from ::1 port 2"]
    assert facts_of(fact_columns(["sshd", "sudo", "sshd"], lines)) == [
        classify(i, m) for i, m in zip(["sshd", "sudo", "sshd"], lines, strict=True)
    ]


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
