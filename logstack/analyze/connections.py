"""Which events are one SSH connection's: its monitor's and its session child's (separate PIDs), joined by the
peer's address and port, or (sshd before 7.4p1, whose child names no port) by address alone when only one
login can be the child's. A line any local user could have written never joins a daemon's event, nor, by
address alone, another such line."""

from __future__ import annotations

from logstack.analyze.event import Event
from logstack.classify.classifier import classify, is_forged
from logstack.journal.line import Line


def peer_key(event: Event) -> tuple[str, ...]:
    """An event's peer: machine, boot, address, who vouches for its lines, and whether a local user wrote them."""
    forged = "forged" if "forged" in event.flags else ""  # a line any local user wrote never joins a daemon's
    return (
        event.machine_id or event.host,
        event.boot_id or "",
        event.source_ip or "",
        event.lines[0].auth or "",
        forged,
    )


def peer_of_line(line: Line, source_ip: str) -> tuple[str, ...]:
    """The peer key (as `peer_key` makes it) of an event this line would start."""
    forged = "forged" if is_forged(line.ident, line.comm, line.exe) else ""
    return (line.machine or line.host, line.boot or "", source_ip, line.auth or "", forged)


def process_of(line: Line) -> tuple[str, str, str]:
    """The process that wrote a line: machine, boot, PID."""
    return (line.machine or line.host, line.boot or "", line.pid)


def processes_of(event: Event) -> set[tuple[str, str, str]]:
    """The processes whose lines an event holds (as `process_of` names them)."""
    return {(event.machine_id or event.host, event.boot_id or "", pid) for pid in event.pids or [event.lines[0].pid]}


# the lines of a session child (`is_session_child`): what it logs after login
CHILD_KINDS = frozenset({"ssh_disconnect", "ssh_other", "ssh_info"})


def is_session_child(event: Event) -> bool:
    """A session child's lines: a disconnect after login (no `[preauth]`) and lines about the session."""
    if event.type != "ssh_preauth" or any(line.message.endswith(" [preauth]") for line in event.lines):
        return False
    return all(classify(line.ident, line.message).kind in CHILD_KINDS for line in event.lines)


def child_of(login: Event, child: Event, gap: int) -> bool:
    """Whether `child` can be the session child of `login`: another PID, from the login on, within the gap."""
    return (
        len(login.pids or [login.lines[0].pid]) == 1
        and set(login.pids or [login.lines[0].pid]).isdisjoint(child.pids or [child.lines[0].pid])
        and login.start <= child.start <= login.end + gap
        and login.known == child.known
    )


def connection_key(event: Event) -> tuple[str, ...]:
    """One SSH connection's events (its monitor's and its child's) by machine, boot, peer and who vouches
    for the lines: an unproven event never merges with a proven one."""
    auth = event.lines[0].auth or ""
    forged = "forged" if "forged" in event.flags else ""
    machine = event.machine_id or event.host
    return (machine, event.boot_id or "", event.source_ip or "", str(event.source_port), auth, forged)
