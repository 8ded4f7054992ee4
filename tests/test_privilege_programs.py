"""doas and run0, added as programs of the registry (one module each plus their message table rows):
their lines make `privilege` events, their PAM lines join them, a forged line is flagged, a line whose
user text repeats doas's own words is read but flagged, and the CLI reports them."""

from __future__ import annotations

import json

import hypothesis
import hypothesis.strategies as st
import pytest

from logstack.analyze.grouping import Event, build_events
from logstack.classify.classifier import EXPECTED_COMM, classify
from logstack.classify.programs import BY_IDENTIFIER, DEFAULT_IDENTIFIERS
from logstack.journal.line import from_journal
from logstack.journal.selection import Selection
from tests.conftest import invoke
from tests.journal import at, entry, write

T0 = at("2026-11-20 10:00:00")
S = 1_000_000


def e(offset: float, pid: int, message: str, ident: str = "doas", **kw):
    kw.setdefault("exe", f"/usr/bin/{ident}")
    return entry(T0 + int(offset * S), ident, pid, message, **kw)


def events(*entries) -> list[Event]:
    return sorted(build_events([from_journal(x) for x in entries]), key=lambda ev: ev.start)


def test_both_are_registered_forwarded_and_bound_to_their_binaries():
    assert {"doas", "run0"} <= set(DEFAULT_IDENTIFIERS)
    assert EXPECTED_COMM["doas"] == {"doas"}
    assert EXPECTED_COMM["run0"] == {"run0", "systemd-run"}  # the kernel's _EXE is the link's target
    assert Selection(DEFAULT_IDENTIFIERS).keeps("run0", "anything")
    assert (
        'includes(["sshd"' in Selection(DEFAULT_IDENTIFIERS).vrl()
        and '"doas", "run0"]' in Selection(DEFAULT_IDENTIFIERS).vrl()
    )


def test_a_command_run_through_doas_is_a_privilege_event():
    (event,) = events(e(0, 700, "alice ran command systemctl restart nginx as root from /home/alice"))
    assert (event.type, event.outcome, event.severity) == ("privilege", "success", "info")
    assert (event.user, event.target_user, event.command) == ("alice", "root", "systemctl restart nginx")
    assert event.flags == []


def test_a_failed_doas_authentication_joins_its_pam_line_and_is_a_failure():
    (event,) = events(
        e(
            0,
            701,
            "pam_unix(doas:auth): authentication failure; logname=bob uid=1000 euid=0 tty=/dev/pts/1 ruser=bob "
            "rhost=  user=bob",
        ),
        e(2, 701, "failed auth for bob"),
    )
    assert (event.type, event.outcome, event.severity) == ("privilege", "failure", "failure")
    assert event.user == "bob" and event.reason == "authentication failure"


def test_a_command_doas_refuses_is_a_failure_with_its_reason():
    (event,) = events(e(0, 702, "command not permitted for mallory: cat /etc/shadow"))
    assert (event.type, event.outcome) == ("privilege", "failure")
    assert (event.user, event.command, event.reason) == ("mallory", "cat /etc/shadow", "command not permitted")


def test_run0_s_own_failure_is_a_privilege_failure():
    (failed,) = events(e(0, 703, "Failed to start transient service unit: Access denied", ident="run0"))
    assert (failed.type, failed.outcome, failed.reason) == ("privilege", "failure", "Access denied")


def test_a_doas_line_from_another_binary_is_forged():
    (event,) = events(e(0, 705, "alice ran command id as root from /tmp", comm="logger", exe="/usr/bin/logger"))
    assert "forged" in event.flags and event.severity == "alert"


@pytest.mark.parametrize(
    "message",
    [
        "alice ran command ls as root from /tmp/x as bob from /tmp",  # a directory `x as bob from /tmp`
        "alice ran command sh as root from /tmp/a as nobody from/b",  # no space after the second `from`
        "alice ran command sh as root from /tmp/a as nobody fromage",
        "alice ran command echo as nobody from x as root from /home/alice",  # the command's own words
    ],
)
def test_a_line_repeating_doas_s_words_in_user_text_is_flagged_ambiguous(message):
    (event,) = events(e(0, 706, message))
    assert "ambiguous" in event.flags and event.severity == "failure"


def test_pam_text_under_run0_s_identifier_makes_no_event_of_another_kind():
    # any user can log as `run0` with systemd-run's binary: only run0's own rows are read there
    lines = events(
        e(0, 707, "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)", ident="run0"),
        e(
            9,
            708,
            "pam_faillock(sshd:auth): Consecutive login failures for user root account temporarily locked",
            ident="run0",
        ),
    )
    assert {(ev.type, ev.outcome) for ev in lines} == {("other", "info")}


def test_a_failed_doas_authentication_names_its_invoker_not_a_target():
    (event,) = events(
        e(
            0,
            709,
            "pam_unix(doas:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/1 "
            "ruser=alice rhost=  user=alice",
        ),
        e(1, 709, "failed auth for alice"),
    )
    assert (event.user, event.target_user) == ("alice", None)


_word = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":'\"`()[]"), min_size=1)


@hypothesis.given(actor=_word, target=_word, command=st.text(min_size=1, max_size=80), cwd=st.text(max_size=40))
def test_whatever_the_user_writes_a_doas_line_is_read_in_linear_time_and_never_unflagged_wrong(
    actor, target, command, cwd
):
    fact = classify("doas", f"{actor} ran command {command} as {target} from {cwd}")
    assert fact.kind == "privilege_cmd"
    # unflagged, the line's actor and target are the ones doas wrote
    if not fact.ambiguous:
        assert (fact.user, fact.target_user) == (actor, target)


def test_the_cli_reports_doas_events(tmp_path, runner):
    path = write(
        tmp_path / "journal.json",
        [
            e(0, 710, "alice ran command apt upgrade as root from /home/alice"),
            e(60, 711, "command not permitted for bob: sh"),
        ],
    )
    result = invoke(runner, "analyze", "--journal", path, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    found = [json.loads(line) for line in result.output.splitlines()]
    assert [(ev["type"], ev["outcome"], ev["user"]) for ev in found] == [
        ("privilege", "success", "alice"),
        ("privilege", "failure", "bob"),
    ]
    assert set(BY_IDENTIFIER) >= {"doas", "run0"}
