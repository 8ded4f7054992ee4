"""The message table against the classifier: every format, rendered with sample or random values, gives
the fact kind its row states (rows in logstack/classify/messages/*.yaml, read from the programs' source)."""

from __future__ import annotations

import re
import time

import hypothesis
import pytest
from hypothesis import strategies as st

from logstack.classify import rules
from logstack.classify.classifier import classify
from logstack.classify.messages import CLASSES, Message, compile_format, load_table
from logstack.classify.rules import buckets_of, match_buckets

TABLE = load_table()
_C_CONVERSION = re.compile(r"%([-+ #0]*\d*(?:\.\d+)?)(?:hh|h|ll|l|z|j|t)?([sdiuxcfm])")

SAMPLES = {
    "user": "alice",
    "login": "alice",
    "target": "root",
    "ip": "203.0.113.9",
    "host": "203.0.113.9",
    "port": "50022",
    "tty": "pts/0",
    "group": "wheel",
    "command": "/usr/bin/id",
    "reason": "Authentication failure",
    "actor": "bob",
    "method": "password",
    "code": "11",
    "plural_s": "s",
    "user_label": " user=",
    "not_label": "",
    "fromhost": " on 'tty1'",
    "subject_owner": "unix-user:alice",
    "auth_identity": "unix-user:root",
    "suffix": "",
    "under_over": "over",
}


def identifier(row: Message) -> str:
    if row.program == "sshd":
        return "sshd-session"
    if row.pam_type is not None:
        return "sshd"  # a module's lines appear under the program that loaded it
    return row.program


def render(row: Message, values: dict[str, str] | None = None) -> str:
    """The line the program writes for this format, as the journal shows it."""
    names = iter(row.fields)

    def one(match: re.Match[str]) -> str:
        spec, conv = match.groups()
        if conv == "m":
            return "Permission denied"
        name = next(names)
        value = (values or SAMPLES).get(name) if name != "-" else None
        if conv in "diux":
            return f"%{spec}d" % int(value if value and value.isdigit() else 7)
        if conv == "f":
            return "1.500"
        return f"%{spec}s" % (value if value is not None else "x")

    text = _C_CONVERSION.sub(one, row.format.replace("%%", "\0")).replace("\0", "%")
    if row.pam_type is not None:
        text = f"{row.program}(sshd:{row.pam_type}): {text}"
    return text


def _id(row: Message) -> str:
    return f"{row.program}:{row.format[:60]}"


@pytest.mark.parametrize("row", TABLE, ids=_id)
def test_every_format_classifies_as_its_row_says(row: Message):
    fact = classify(identifier(row), render(row))
    assert fact.kind == row.kind, (render(row), row.source)
    if row.program == "sshd" and "ip" in row.fields and row.compiled:
        assert fact.source_ip == SAMPLES["ip"]
    if row.program == "sshd" and ("user" in row.fields or "login" in row.fields) and row.compiled:
        assert fact.user == "alice"
    if row.reason and row.compiled:
        assert fact.reason == row.reason


def test_the_table_is_well_formed():
    assert {m.cls for m in TABLE} <= CLASSES
    for m in TABLE:
        assert re.fullmatch(r"[\w./+-]+ \S+ [\w./+-]+(:\d+)?( \w+\(\))?", m.source), m.source
        assert re.fullmatch(r"\S+\.\.\S+", m.versions), m.versions
    formats = [(m.program, m.format) for m in TABLE]
    assert len(formats) == len(set(formats))


def test_policy_refusals_are_failures_with_a_reason():
    for m in TABLE:
        if m.program == "sshd" and m.cls == "refusal" and m.kind == "ssh_refused":
            assert m.reason, m.format


_names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60)
_addresses = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=6).map(lambda a: f"{a}%eth0"),
)
_ports = st.integers(min_value=0, max_value=65535).map(str)
_SSH_ROWS = [m for m in TABLE if m.program == "sshd" and m.compiled]


_ACCOUNTS = st.from_regex(r"[a-z_][a-z0-9_.-]{0,31}", fullmatch=True)


def _rendered(row: Message, user: str, ip: str, port: str, reason: str) -> str:
    """The row's line with these values where its conversions take them."""
    return render(row, {**SAMPLES, "user": user, "login": user, "ip": ip, "host": ip, "port": port, "reason": reason})


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    row=st.sampled_from(_SSH_ROWS),
    user=_names.filter(lambda n: n.strip() == n and " " not in n and n),
    account=_ACCOUNTS,
    ip=_addresses,
    port=_ports,
    reason=_names,
)
def test_formats_with_random_values_classify_the_same(row, user, account, ip, port, reason):
    """Any name where sshd writes what a client sent; an account name where it writes an existing account."""
    user = account if "login" in row.fields else user
    line = _rendered(row, user, ip, port, reason)
    start = time.perf_counter()
    fact = classify("sshd-session", line)
    assert time.perf_counter() - start < 0.01
    assert fact.kind == row.kind, (line, row.source)
    if "ip" in row.fields:
        assert fact.source_ip == ip
    if "user" in row.fields or "login" in row.fields:
        assert fact.user == user


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(row=st.sampled_from([m for m in _SSH_ROWS if "user" in m.fields and "ip" in m.fields]), ip=_addresses)
def test_a_user_name_naming_an_address_cannot_displace_the_real_one(row, ip):
    """`Invalid user x from 10.0.0.1 port 22 from 203.0.113.9 port 4242`: the daemon's address comes last."""
    forged = f"x from 10.0.0.1 port 22 ssh2 from 10.0.0.1 port 22 {' '.join(['for', 'user'])}"
    fact = classify("sshd-session", render(row, {**SAMPLES, "user": forged, "ip": ip}))
    if row.method == "rhosts-rsa":  # a client's name on both sides of the address: read no address at all
        assert fact.source_ip in (ip, None) and (fact.source_ip == ip or fact.ambiguous)
    else:
        assert fact.source_ip == ip


def test_no_compiled_pattern_backtracks_on_long_hostile_input():
    hostile = [
        "Failed password for " + "x from 1 port 1 " * 120,
        "Invalid user " + " from " * 300 + "1.2.3.4 port",
        "Connection closed by invalid user " + "a " * 900,
        "User " + "a from b " * 200 + "not allowed because",
    ]
    for line in hostile:
        start = time.perf_counter()
        classify("sshd-session", line[:2048])
        assert time.perf_counter() - start < 0.01, line[:40]


def test_compiled_patterns_read_one_free_value_at_most():
    for m in _SSH_ROWS:
        pattern = compile_format(m.format, m.fields)
        assert pattern.count(".*)") + pattern.count(".*?)") <= 1, m.format


def _first_tag(row: Message) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", row.versions.split("..")[0]))


_OLD_ROWS = [m for m in _SSH_ROWS if _first_tag(m) < (7, 4, 1)]
_CURRENT_BUCKETS = buckets_of(tuple(m for m in TABLE if m.program == "sshd" and _first_tag(m) >= (7, 4, 1)))


def test_rows_before_7_4p1_are_there_and_cite_their_tags():
    assert len(_OLD_ROWS) >= 40
    for row in _OLD_ROWS:
        assert re.match(r"openssh-portable V_[5-7]_\d_P\d \S+\.c:\d+ \w+\(\)$", row.source), row.source
        assert _first_tag(row) <= tuple(int(n) for n in re.findall(r"\d+", row.source.split()[1])), row.source


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(
    row=st.sampled_from([m for m in _SSH_ROWS if _first_tag(m) >= (7, 4, 1)]),
    user=_names.filter(lambda n: n.strip() == n and n),
    account=_ACCOUNTS,
    ip=_addresses,
    port=_ports,
    reason=_names,
)
def test_lines_of_7_4p1_and_later_read_as_before_the_older_rows(row, user, account, ip, port, reason):
    """Differential: the rows for 5.3p1-7.2p2 change nothing a 7.4p1+ line yields (row and values)."""
    line = _rendered(row, account if "login" in row.fields else user, ip, port, reason)
    assert match_buckets(rules.TABLE_RULES["sshd"], line) == match_buckets(_CURRENT_BUCKETS, line), line


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(row=st.sampled_from([m for m in _OLD_ROWS if "ip" in m.fields]), user=_names, ip=_addresses)
def test_older_lines_read_the_address_sshd_wrote_whatever_the_name(row, user, ip):
    """Where a 5.3p1-7.2p2 line has no port, the address is its last word or is followed by fixed text: a
    client's name holding `from A port N` (a newer shape) cannot stand in for it."""
    forged = f"{user} from 10.0.0.1 port 22 ssh2 from 10.0.0.1 port 22"
    line = render(row, {**SAMPLES, "user": forged, "ip": ip})
    start = time.perf_counter()
    fact = classify("sshd", line)
    assert time.perf_counter() - start < 0.01
    assert fact.kind == row.kind, line
    if row.method == "rhosts-rsa":  # a name on both sides of the address: read only when it is the one there
        assert fact.source_ip == ip or (fact.ambiguous and fact.source_ip is None), line
    else:
        assert fact.source_ip == ip, line


def test_every_row_that_ends_the_line_compiles():
    for row in TABLE:
        if row.ends_line:
            assert row.compiled and row.pattern().endswith("\\Z"), row.format


def test_a_remote_user_naming_an_address_makes_the_line_ambiguous():
    for line in (
        "Accepted rhosts-rsa for bob from 1.2.3.4 port 22 ssh1: ruser alice from 6.6.6.6 port 22 ssh1",
        "Failed rhosts-rsa for bob from 1.2.3.4 port 22 ruser alice from 6.6.6.6 port 22 ruser x",
    ):
        fact = classify("sshd", line)
        assert fact.ambiguous and fact.source_ip is None and fact.user is None, line
    assert classify("sshd", "Accepted rhosts-rsa for bob from 1.2.3.4 port 22 ssh1: ruser alice").source_ip == "1.2.3.4"
