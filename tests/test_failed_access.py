"""Failed accesses a current OpenSSH on Linux writes, each reported as a failure (the cases an annotated
corpus of real sshd lines showed missing), and the event rules around them."""

from __future__ import annotations

import pytest

from logstack.analyze.grouping import Event, build_events
from logstack.journal.line import from_journal
from tests.journal import at, entry

T0 = at("2026-11-20 10:00:00")
S = 1_000_000


def e(offset: float, pid: int, message: str, ident: str = "sshd-session"):
    return entry(T0 + int(offset * S), ident, pid, message)


def events(*entries) -> list[Event]:
    return sorted(build_events([from_journal(x) for x in entries]), key=lambda ev: ev.start)


POLICY = [
    ("User root from 46.45.128.3 not allowed because listed in DenyUsers", "listed in DenyUsers"),
    ("User bob from 46.45.128.3 not allowed because not listed in AllowUsers", "not listed in AllowUsers"),
    ("User bob from 46.45.128.3 not allowed because not in any group", "not in any group"),
    (
        "User bob from 46.45.128.3 not allowed because a group is listed in DenyGroups",
        "a group is listed in DenyGroups",
    ),
    (
        "User bob from 46.45.128.3 not allowed because none of user's groups are listed in AllowGroups",
        "none of user's groups are listed in AllowGroups",
    ),
    ("ROOT LOGIN REFUSED FROM 46.45.128.3 port 4242", "root login refused (PermitRootLogin)"),
    (
        "error: maximum authentication attempts exceeded for root from 46.45.128.3 port 4242 ssh2 [preauth]",
        "maximum authentication attempts exceeded",
    ),
    (
        "Disconnecting authenticating user root 46.45.128.3 port 4242: Too many authentication failures [preauth]",
        "too many authentication failures",
    ),
    ("Disconnecting: Too many authentication failures for root [preauth]", "too many authentication failures"),
]


@pytest.mark.parametrize(("message", "reason"), POLICY)
def test_refusals_by_policy_are_failures_with_a_reason(message, reason):
    (event,) = events(e(0, 700, message))
    assert (event.type, event.outcome, event.reason) == ("ssh_login", "failure", reason)
    assert event.severity == "failure"


@pytest.mark.parametrize(
    ("message", "user", "invalid"),
    [
        ("error: PAM: Authentication failure for alice from 203.0.113.9", "alice", False),
        ("error: PAM: authentication error for illegal user bob from 203.0.113.9", "bob", True),
        ("Failed keyboard-interactive/pam for invalid user bob from 203.0.113.9 port 4242 ssh2", "bob", True),
        ("Failed publickey for invalid user bob from 203.0.113.9 port 4242 ssh2: RSA SHA256:x", "bob", True),
    ],
)
def test_pam_and_keyboard_interactive_failures(message, user, invalid):
    (event,) = events(e(0, 701, message))
    assert (event.type, event.outcome, event.user, event.source_ip) == ("ssh_login", "failure", user, "203.0.113.9")
    assert ("invalid_user" in event.flags) is invalid


@pytest.mark.parametrize(
    "message",
    [
        "Received disconnect from 203.0.113.9 port 4242:11: Bye Bye [preauth]",
        "Received disconnect from 203.0.113.9 port 4242:3: com.jcraft.jsch.JSchException: Auth fail [preauth]",
        "Connection closed by authenticating user root 203.0.113.9 port 4242 [preauth]",
        "Disconnected from invalid user admin 203.0.113.9 port 4242 [preauth]",
    ],
)
def test_clients_giving_up_before_authenticating_are_failures(message):
    (event,) = events(e(0, 702, message))
    assert (event.type, event.outcome, event.source_ip) == ("ssh_login", "failure", "203.0.113.9")
    assert event.reason.startswith("disconnected before authenticating")


def test_a_disconnect_after_a_session_is_not_a_failure():
    found = events(
        e(0, 703, "Accepted publickey for alice from 203.0.113.9 port 4242 ssh2: ED25519 SHA256:x"),
        e(60, 703, "Received disconnect from 203.0.113.9 port 4242:11: disconnected by user"),
        e(60.1, 703, "Disconnected from user alice 203.0.113.9 port 4242"),
    )
    assert [(ev.type, ev.outcome) for ev in found] == [("ssh_login", "success")]


def test_success_after_failures_for_other_names_in_one_connection_is_flagged():
    (event,) = events(
        e(
            0,
            704,
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=root rhost=203.0.113.9",
        ),
        e(
            1,
            704,
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=sudoer rhost=203.0.113.9",
        ),
        e(2, 704, "Accepted password for known from 203.0.113.9 port 4242 ssh2"),
    )
    assert (event.outcome, event.user) == ("success", "known")
    assert "after_failures" in event.flags and event.severity == "alert"
    assert event.tried_users == ["root", "sudoer"]


def test_success_after_failed_password_for_same_user_in_one_connection_is_flagged():
    (event,) = events(
        e(0, 705, "Failed password for alice from 203.0.113.9 port 4242 ssh2"),
        e(3, 705, "Accepted password for alice from 203.0.113.9 port 4242 ssh2"),
    )
    assert event.outcome == "success" and "after_failures" in event.flags
    assert event.tried_users == ["alice"]


def test_a_clean_success_is_not_flagged():
    (event,) = events(e(0, 706, "Accepted publickey for alice from 203.0.113.9 port 4242 ssh2: ED25519 SHA256:x"))
    assert event.flags == [] and event.tried_users == []


def test_lines_of_one_pid_naming_another_address_start_a_new_event():
    found = events(
        e(0, 707, "Invalid user admin from 203.0.113.9 port 4242"),
        e(1, 707, "Failed password for invalid user admin from 203.0.113.9 port 4242 ssh2"),
        e(2, 707, "Invalid user admin from 198.51.100.7 port 5353"),
        e(3, 707, "Failed password for invalid user admin from 198.51.100.7 port 5353 ssh2"),
    )
    assert [(ev.source_ip, len(ev.lines)) for ev in found] == [("203.0.113.9", 2), ("198.51.100.7", 2)]


def test_a_syslog_message_id_does_not_hide_a_message():
    (event,) = events(e(0, 708, "[ID 800047 auth.info] Failed password for root from 203.0.113.9 port 22 ssh2"))
    assert (event.type, event.outcome, event.user) == ("ssh_login", "failure", "root")


def test_a_name_carrying_an_address_cannot_redirect_the_event():
    (event,) = events(
        e(0, 709, "Invalid user x from 10.0.0.1 port 22 from 203.0.113.9 port 4242"),
        e(1, 709, "Failed password for invalid user x from 10.0.0.1 port 22 from 203.0.113.9 port 4242 ssh2"),
    )
    assert event.source_ip == "203.0.113.9" and event.user == "x from 10.0.0.1 port 22"


def test_pam_s_closing_count_of_more_failures_is_a_failure():
    """Logged after the module is gone: pam_vsyslog's prefix is then just "PAM" (Linux-PAM libpam/pam_syslog.c)."""
    (event,) = events(
        e(
            0,
            710,
            "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
        )
    )
    assert (event.type, event.outcome, event.user, event.source_ip) == ("ssh_login", "failure", "root", "203.0.113.9")


def test_a_pam_failure_under_a_renamed_pam_service_is_an_ssh_failure():
    """OpenSSH >= 9.8 has PAMServiceName: the PAM service need not be called sshd."""
    (event,) = events(
        e(
            0,
            711,
            "pam_unix(ssh-mfa:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
            "rhost=203.0.113.9  user=bob",
        )
    )
    assert (event.type, event.outcome, event.user) == ("ssh_login", "failure", "bob")


def test_client_chosen_text_after_the_address_cannot_frame_another_address():
    """A self-made certificate's ID is logged after the address (for an invalid user at the default level)."""
    lines = []
    for n in range(12):
        port = 40000 + n
        lines += (
            e(n, 720 + n, f"Invalid user x from 1.2.3.4 port {port}"),
            e(
                n + 0.1,
                720 + n,
                f"Failed publickey for invalid user x from 1.2.3.4 port {port} ssh2: ED25519-CERT SHA256:a "
                f"ID from 6.6.6.6 port 1 ssh2: ED25519 SHA256:b (serial 1) CA ED25519 SHA256:c",
            ),
            e(n + 0.2, 720 + n, f"Connection closed by invalid user x 1.2.3.4 port {port} [preauth]"),
        )
    found = events(*lines)
    assert {ev.source_ip for ev in found} == {"1.2.3.4"}
    assert [ev.source_ip for ev in found if ev.type == "brute_force"] == ["1.2.3.4"]


def test_a_login_refused_by_pam_account_checks_after_accepted_is_a_failure():
    (event,) = events(
        e(0, 730, "Accepted password for bob from 203.0.113.9 port 4242 ssh2"),
        e(0.1, 730, "fatal: Access denied for user bob by PAM account configuration [preauth]"),
    )
    assert (event.type, event.outcome) == ("ssh_login", "failure")
    assert event.reason.startswith("refused by PAM account configuration")


@pytest.mark.parametrize(
    ("comm", "exe", "forged"),
    [
        ("sshd-session", "/usr/lib/openssh/sshd-session", False),
        ("sshd-session", "/usr/libexec/openssh/sshd-session", False),
        ("sshd-session", "/tmp/sshd-session", True),  # a copy of logger named like the daemon
        ("sshd-session", "/usr/bin/logger", True),  # _COMM set with prctl(PR_SET_NAME)
        ("sshd-session", "/usr/../tmp/sshd-session", True),
        ("sshd-session", None, False),
        ("logger", None, True),
    ],
)
def test_forged_lines_are_told_by_the_kernel_s_exe_path(comm, exe, forged):
    from logstack.classify.classifier import is_forged

    assert is_forged("sshd-session", comm, exe) is forged


def test_scanners_that_never_name_an_account_make_no_brute_force():
    found = events(
        *[
            e(n, 740 + n, f"Received disconnect from 203.0.113.9 port {5000 + n}:11: Bye Bye [preauth]")
            for n in range(12)
        ]
    )
    assert all(ev.type == "ssh_login" and ev.outcome == "failure" for ev in found)
    assert not [ev for ev in found if ev.type == "brute_force"]


def test_a_sudo_line_whose_directory_carries_fields_is_flagged():
    (event,) = events(
        e(
            0,
            750,
            "alice : TTY=pts/0 ; PWD=/tmp/x ; USER=backup ; COMMAND=/bin/true ; USER=root ; COMMAND=/bin/bash",
            "sudo",
        )
    )
    assert "ambiguous" in event.flags and event.severity == "failure"


def test_a_long_sudo_line_with_a_newline_is_classified_quickly():
    import time

    from logstack.classify.classifier import classify

    line = "a" * 1000 + "\n" + "b : " * 250
    classify("sudo", "warm up : the rules compile on first use")
    start = time.perf_counter()
    classify("sudo", line[:2048])
    assert time.perf_counter() - start < 0.005


def test_a_disconnect_text_a_client_chose_cannot_name_another_address():
    """A bad service request's name is part of sshd's disconnect text (real sshd 9.2 wrote this line)."""
    (event,) = events(
        e(
            0,
            760,
            "Disconnecting invalid user nosuchuser 127.0.0.1 port 41714: bad service request  6.6.6.6 port 1: "
            "Too many authentication failures [preauth]",
        )
    )
    assert event.source_ip != "6.6.6.6" and event.source_port != 1


def test_success_after_failures_is_flagged_while_the_failing_connection_is_still_open():
    (success, _failure) = sorted(
        events(
            e(0, 761, "Failed password for root from 203.0.113.9 port 4000 ssh2"),
            e(5, 762, "Accepted password for root from 203.0.113.9 port 4001 ssh2"),
            e(125, 761, "fatal: Timeout before authentication for 203.0.113.9 port 4000"),
        ),
        key=lambda ev: ev.outcome != "success",
    )
    assert success.outcome == "success" and "after_failures" in success.flags


def test_a_keyboard_interactive_try_counts_once_and_a_pam_host_name_does_not_split_it():
    (event,) = events(
        e(0, 763, "error: PAM: Authentication failure for bob from attacker.example.net"),
        e(0.1, 763, "Failed keyboard-interactive/pam for bob from 203.0.113.9 port 4242 ssh2"),
    )
    assert (event.outcome, event.source_ip, event.attempts) == ("failure", "203.0.113.9", 1)


def test_a_gssapi_display_name_cannot_move_the_address():
    found = events(
        e(0, 764, "Failed gssapi-with-mic for bob from 203.0.113.9 port 4242 ssh2: x from 6.6.6.6 port 1 ssh2"),
        e(0.1, 764, "Connection closed by authenticating user bob 203.0.113.9 port 4242 [preauth]"),
    )
    assert {ev.source_ip for ev in found} == {"203.0.113.9"}


def test_a_fido_key_s_signature_count_keeps_the_line_a_failure():
    (event,) = events(
        e(0, 765, "Failed publickey for bob from 203.0.113.9 port 4242 ssh2: ECDSA-SK SHA256:abc, signature count = 7")
    )
    assert (event.outcome, event.user, event.source_ip) == ("failure", "bob", "203.0.113.9")


def test_a_line_without_comm_or_exe_is_forged():
    from logstack.classify.classifier import is_forged

    assert is_forged("sshd-session", None, None) is True
    assert is_forged("kernel", None, None) is False  # not a program logstack expects


def test_a_user_name_with_a_colon_cannot_frame_an_address_in_a_disconnect_line():
    lines = []
    for n in range(10):
        port = 41000 + n
        lines += (
            e(n, 770 + n, f"Invalid user a 6.6.6.6 port 1: Too many authentication failures from 1.2.3.4 port {port}"),
            e(
                n + 0.1,
                770 + n,
                f"Disconnecting invalid user a 6.6.6.6 port 1: Too many authentication failures 1.2.3.4 port {port}: "
                "Too many authentication failures [preauth]",
            ),
        )
    found = events(*lines)
    assert "6.6.6.6" not in {ev.source_ip for ev in found}


def test_after_failures_while_streaming_with_the_failing_connection_open():
    from logstack.analyze.grouping import EventBuilder, Settings

    builder = EventBuilder(Settings(gap=10 * S))
    released = []
    feed = [e(0, 780, "Failed password for root from 203.0.113.9 port 4000 ssh2")]
    feed += [e(1, 781, "Accepted password for root from 203.0.113.9 port 4001 ssh2")]
    # the failing connection stays open (a line every few seconds), while unrelated lines move time on
    feed += [
        e(2 + 3 * k, 780, "Postponed keyboard-interactive for root from 203.0.113.9 port 4000 ssh2") for k in range(20)
    ]
    feed += [e(2 + 0.02 * k, 5000 + k, "(root) CMD (true)", "CRON") for k in range(2100)]
    for raw in sorted(feed, key=lambda x: int(x["__REALTIME_TIMESTAMP"])):
        released += builder.feed(from_journal(raw))
    success = next(ev for ev in released + builder.finish() if ev.outcome == "success")
    assert "after_failures" in success.flags


def test_a_third_process_at_the_same_address_and_port_is_another_connection():
    found = events(
        e(0, 790, "Accepted publickey for alice from 192.0.2.50 port 40000 ssh2: ED25519 SHA256:x"),
        e(1, 791, "Disconnected from user alice 192.0.2.50 port 40000"),
        e(2, 792, "Failed password for root from 192.0.2.50 port 40000 ssh2"),
    )
    assert len([ev for ev in found if ev.type == "ssh_login"]) == 2


def test_failures_from_one_ipv6_64_count_together():
    lines = [
        e(n, 800 + n, f"Failed password for root from 2001:db8:1:2::{n + 1:x} port {4000 + n} ssh2") for n in range(10)
    ]
    found = events(*lines)
    (incident,) = [ev for ev in found if ev.type == "brute_force"]
    assert incident.source_ip == "2001:db8:1:2::/64"
    assert "10 failed login attempts from 2001:db8:1:2::/64" in incident.reason
    # another /64, and IPv4 (mapped or not), stay apart
    from logstack.analyze.failures import source_key

    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:203.0.113.9") == source_key("203.0.113.9") == "203.0.113.9"
    assert source_key("fe80::1%eth0") == "fe80::/64"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("pam_listfile(sshd:auth): Refused user bob for service sshd", "refused by pam_listfile"),
        ("pam_access(sshd:account): access denied for user `bob' from `203.0.113.9'", "access denied by pam_access"),
    ],
)
def test_pam_modules_refusals_say_which_module(message, reason):
    (event,) = events(e(0, 810, message))
    assert (event.type, event.outcome, event.user, event.reason) == ("ssh_login", "failure", "bob", reason)


def test_keys_offered_before_the_accepted_one_are_a_success_with_the_keys_as_detail():
    """ssh-agent offers each key in turn: `Failed publickey` twice, `Postponed`, `Accepted` in one connection."""
    (event,) = events(
        e(0, 707, "Failed publickey for alice from 203.0.113.9 port 4242 ssh2: RSA SHA256:aaaa"),
        e(0.1, 707, "Failed publickey for alice from 203.0.113.9 port 4242 ssh2: ECDSA SHA256:bbbb"),
        e(0.2, 707, "Postponed publickey for alice from 203.0.113.9 port 4242 ssh2 [preauth]"),
        e(0.3, 707, "Accepted publickey for alice from 203.0.113.9 port 4242 ssh2: ED25519 SHA256:cccc"),
    )
    assert (event.outcome, event.user, event.severity) == ("success", "alice", "info")
    assert "after_failures" not in event.flags
    assert event.reason == "2 keys offered before the accepted one: RSA SHA256:aaaa, ECDSA SHA256:bbbb"


def test_a_password_tried_besides_the_keys_still_flags_the_success():
    (event,) = events(
        e(0, 708, "Failed publickey for alice from 203.0.113.9 port 4242 ssh2: RSA SHA256:aaaa"),
        e(1, 708, "Failed password for alice from 203.0.113.9 port 4242 ssh2"),
        e(2, 708, "Accepted password for alice from 203.0.113.9 port 4242 ssh2"),
    )
    assert "after_failures" in event.flags and event.severity == "alert"


def test_keys_refused_without_an_acceptance_stay_a_failure():
    (event,) = events(
        e(0, 709, "Failed publickey for root from 203.0.113.9 port 4242 ssh2: RSA SHA256:aaaa"),
        e(1, 709, "Connection closed by authenticating user root 203.0.113.9 port 4242 [preauth]"),
    )
    assert event.outcome == "failure" and event.attempts == 1


def test_lines_of_openssh_before_7_4p1_are_failures_with_their_address():
    """5.3p1-7.2p2 (RHEL 6/7, Ubuntu 12.04-16.04, Debian 8) wrote no port in these lines."""
    cases = [
        ("Invalid user admin from 198.51.100.7", "failure", "198.51.100.7"),
        ("ROOT LOGIN REFUSED FROM 198.51.100.7", "failure", "198.51.100.7"),
        ("Failed password for root from 198.51.100.7 port 4242", "failure", "198.51.100.7"),
        ("Failed password for root from 198.51.100.7 port 4242 ssh1", "failure", "198.51.100.7"),
        ("Failed publickey for root from 198.51.100.7 port 4242 ssh2", "failure", "198.51.100.7"),
        ("Failed rhosts-rsa for root from 198.51.100.7 port 4242 ssh1: ruser bob", "failure", "198.51.100.7"),
        ("refused connect from scanner.example (198.51.100.7)", "failure", "198.51.100.7"),  # tcp wrappers
        ("refused connect from 198.51.100.7", "failure", "198.51.100.7"),
    ]
    for n, (message, outcome, ip) in enumerate(cases):
        (event,) = events(e(n, 800 + n, message, ident="sshd"))
        assert (event.type, event.outcome, event.source_ip) == ("ssh_login", outcome, ip), message


def _old_session(login_pid: int, child_pid: int, ip: str, t: float, port: int = 51514):
    login = e(t, login_pid, f"Accepted password for alice from {ip} port {port} ssh2", ident="sshd")
    child = [
        e(t + 1, child_pid, "subsystem request for sftp by user alice", ident="sshd"),
        e(t + 2, child_pid, f"Received disconnect from {ip}: 11: disconnected by user", ident="sshd"),
    ]
    return login, child


@pytest.mark.parametrize("child_first", [False, True])
def test_an_old_sshds_session_child_joins_its_login_by_address(child_first):
    """Before 7.4p1 the child's lines name no port: they join the one login from that address."""
    login, child = _old_session(900, 901, "198.51.100.20", 0)
    (event,) = events(*child, login) if child_first else events(login, *child)
    assert (event.type, event.outcome, event.user) == ("ssh_login", "success", "alice")
    assert event.pids == ["900", "901"] and len(event.lines) == 3


def test_with_two_logins_from_the_address_the_child_joins_neither():
    first, child = _old_session(910, 911, "198.51.100.21", 0)
    second, _ = _old_session(912, 913, "198.51.100.21", 0.5, port=51515)
    found = events(first, second, *child)
    assert sorted(ev.type for ev in found) == ["ssh_login", "ssh_login", "ssh_preauth"]


def test_a_scanner_line_without_port_joins_no_login():
    login, _ = _old_session(920, 921, "198.51.100.22", 0)
    scan = e(1, 922, "Did not receive identification string from 198.51.100.22", ident="sshd")
    assert sorted(ev.type for ev in events(login, scan)) == ["ssh_login", "ssh_preauth"]


def test_key_tries_in_another_open_connection_still_flag_a_success():
    """Probes are no failure for the connection they end in; another connection's still are, also while that
    connection is kept open past the success's release (an attacker idling until the login grace ends)."""
    key = "Failed publickey for root from 198.51.100.30 port 4000 ssh2: RSA SHA256:k{}".format
    probes = [e(i * 50, 930, key(i)) for i in range(10)]  # one every 50 s up to 450 s: the group stays open
    success = e(20, 931, "Accepted password for alice from 198.51.100.30 port 4001 ssh2")
    filler = [
        e(400 + i * 0.02, 2000 + i, f"Connection closed by 10.0.{i // 250}.{i % 250} port 22") for i in range(2100)
    ]
    found = {ev.pids[0]: ev for ev in events(probes[0], success, *probes[1:], *filler) if ev.pids}
    assert found["931"].outcome == "success" and "after_failures" in found["931"].flags


def test_an_old_child_does_not_join_a_later_login_from_the_same_address():
    """A NAT address: alice's child (seen since t=1) ends at t=1000; mallory logged in from it at t=880."""
    alice = e(0, 940, "Accepted password for alice from 198.51.100.40 port 5000 ssh2", ident="sshd")
    alice_child = e(1, 941, "subsystem request for sftp by user alice", ident="sshd")
    mallory = e(880, 942, "Accepted password for mallory from 198.51.100.40 port 5001 ssh2", ident="sshd")
    alice_end = e(1000, 941, "Received disconnect from 198.51.100.40: 11: disconnected by user", ident="sshd")
    found = events(alice, alice_child, mallory, alice_end)
    by_user = {ev.user: ev for ev in found if ev.type == "ssh_login"}
    assert by_user["mallory"].pids == ["942"]  # not alice's session end


def test_a_forged_child_line_joins_no_real_login():
    """`logger -t sshd "Received disconnect …"` from a local user: its own event, the real login unflagged."""
    login = e(0, 950, "Accepted password for alice from 198.51.100.50 port 5000 ssh2", ident="sshd")
    forged = entry(
        T0 + 2 * S,
        "sshd",
        951,
        "Received disconnect from 198.51.100.50: 11: disconnected by user",
        exe="/usr/bin/logger",
    )
    found = events(login, forged)
    real = next(ev for ev in found if ev.type == "ssh_login")
    assert "forged" not in real.flags and real.pids == ["950"]


def _login_pairs(count: int, per_second: int, forged: bool = False) -> list:
    """A flood of logins and port-less session children from one address (a NAT in front of old sshd clients,
    or a local user's `logger -t sshd`: `forged`), each line from a new process, `per_second` pairs a second."""
    lines = []
    for i in range(count):
        at = i * S // per_second
        login = f"Accepted password for x from 10.9.9.9 port {1024 + i} ssh2"
        child = "Received disconnect from 10.9.9.9: 11: disconnected by user"
        for pid, message in ((10_000 + 2 * i, login), (10_001 + 2 * i, child)):
            made = {"comm": "logger", "exe": "/usr/bin/logger"} if forged else {}
            lines.append(from_journal(entry(T0 + at, "sshd", pid, message, **made)))
    return lines


def test_a_flood_of_logins_from_one_address_costs_each_child_a_bounded_look(monkeypatch):
    """Each port-less child looked through every login from its address waiting to be released (and the logins
    through every such child): a flood of pairs made the analysis quadratic in the flood's rate. Now a child looks
    at the newest few, and with more than RECENT waiting joins none: the checks grow with the lines. A local user's
    forged pairs join nothing: no check at all."""
    from logstack.analyze import portless

    calls = 0
    real = portless.child_of

    def counted(*args):
        nonlocal calls
        calls += 1
        return real(*args)

    monkeypatch.setattr(portless, "child_of", counted)

    def checks(rate: int) -> int:
        nonlocal calls
        calls = 0
        found = list(build_events(_login_pairs(600 * rate, rate)))
        assert sum(len(event.pids) > 1 for event in found) < portless.RECENT  # joins only before the flood builds
        return calls

    assert checks(40) < 5 * checks(10)
    calls = 0
    forged = list(build_events(_login_pairs(600, 10, forged=True)))
    assert calls == 0 and all(len(event.lines) == 1 for event in forged) and len(forged) == 1200
