"""The vocabulary of analysis: what one line states (a fact kind) and what a group of lines is (an event type)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FactKind(StrEnum):
    """What one journal line says, as the classifier reads it."""

    SSH_ACCEPT = "ssh_accept"
    SSH_FAIL = "ssh_fail"
    SSH_INVALID = "ssh_invalid"
    SSH_REFUSED = "ssh_refused"  # refused by policy before or after authenticating (DenyUsers, root, …)
    SSH_ABANDON = "ssh_abandon"  # the client gave up or was cut off after failing to authenticate
    SSH_PAM_FAIL = "ssh_pam_fail"  # sshd's report of a PAM failure (repeats a try; may name a host, not an address)
    SSH_DISCONNECT = "ssh_disconnect"
    SSH_PREAUTH = "ssh_preauth"
    SSH_CONNECT = "ssh_connect"
    SSH_INFO = "ssh_info"
    SSH_OTHER = "ssh_other"
    AUTH_FAILURE = "auth_failure"  # pam_unix/pam_sss ... authentication failure
    SESSION_OPEN = "session_open"
    SESSION_CLOSE = "session_close"
    PAM_INFO = "pam_info"
    LOCKOUT = "lockout"
    SUDO_CMD = "sudo_cmd"
    SUDO_FAIL = "sudo_fail"
    SUDO_CONTINUED = "sudo_continued"
    SUDO_OTHER = "sudo_other"
    SU_OK = "su_ok"
    SU_FAIL = "su_fail"
    SU_OTHER = "su_other"
    CONSOLE_OK = "console_ok"
    CONSOLE_FAIL = "console_fail"
    LOGIN_OTHER = "login_other"
    LOGIND = "logind"
    LOGIND_OTHER = "logind_other"
    ACCOUNT = "account"
    ACCOUNT_OTHER = "account_other"
    POLKIT_OK = "polkit_ok"
    POLKIT_FAIL = "polkit_fail"
    POLKIT_OTHER = "polkit_other"
    # privilege programs beyond sudo, su and pkexec (doas, run0, …): one vocabulary for all of them
    PRIVILEGE_CMD = "privilege_cmd"
    PRIVILEGE_FAIL = "privilege_fail"
    PRIVILEGE_OTHER = "privilege_other"
    LOG_GAP = "log_gap"
    JOURNALD_OTHER = "journald_other"
    OTHER = "other"


class EventType(StrEnum):
    """What a group of lines is, as analysis reports it."""

    SSH_LOGIN = "ssh_login"
    SSH_PREAUTH = "ssh_preauth"
    SUDO = "sudo"
    SU = "su"
    CONSOLE_LOGIN = "console_login"
    SESSION = "session"
    ACCOUNT_CHANGE = "account_change"
    ACCOUNT_LOCKOUT = "account_lockout"
    POLKIT = "polkit"
    PRIVILEGE = "privilege"  # a command run as another user through a program of the registry beyond sudo/su
    BRUTE_FORCE = "brute_force"
    LOG_GAP = "log_gap"
    OTHER = "other"


@dataclass(slots=True, kw_only=True)
class Subject:
    """Who did what, as whom, from where: what a line states and what an event reports."""

    user: str | None = None
    target_user: str | None = None
    source_ip: str | None = None
    source_port: int | None = None
    method: str | None = None
    command: str | None = None
    reason: str | None = None
