"""The record a sender forwards, in one place: the store's columns, the columns analysis reads, the
fields a signature covers, and the identifier of logstack's own heartbeats."""

from __future__ import annotations

# A sender's own line, every minute: proves the host is alive and which configuration it runs.
HEARTBEAT_IDENTIFIER = "logstack-heartbeat"

# journald columns every event carries, created up front so the first batch cannot race table creation.
STORE_COLUMNS: tuple[str, ...] = (
    "host",
    "message",
    "timestamp",
    "source_type",
    "SYSLOG_IDENTIFIER",
    "SYSLOG_FACILITY",
    "SYSLOG_PID",
    "PRIORITY",
    "_PID",
    "_UID",
    "_GID",
    "_COMM",
    "_EXE",
    "_CMDLINE",
    "_AUDIT_LOGINUID",
    "_AUDIT_SESSION",
    "_SYSTEMD_UNIT",
    "_BOOT_ID",
    "_MACHINE_ID",
    "_TRANSPORT",
    "__CURSOR",
    "__MONOTONIC_TIMESTAMP",
    "__REALTIME_TIMESTAMP",
)


# journald columns analysis reads; absent ones are simply not selected.
READ_COLUMNS = (
    "greptime_timestamp",
    "__REALTIME_TIMESTAMP",
    "timestamp",
    "__CURSOR",
    "_MACHINE_ID",
    "_BOOT_ID",
    "_HOSTNAME",
    "host",
    "logstack_host",
    "_PID",
    "SYSLOG_PID",
    "SYSLOG_IDENTIFIER",
    "message",
    "MESSAGE",
    "_COMM",
    "_EXE",
    "_AUDIT_LOGINUID",
)


# journald names Vector renames on the sender (MESSAGE → message, _HOSTNAME → host, v0.57.0
# src/sources/journald.rs): a column of such a name in the store was put there by someone else, and a row's
# signature does not cover it, so analysis never reads it in place of the signed field.
NOT_IN_STORE = frozenset({"MESSAGE", "_HOSTNAME"})


# Journald fields as the receiving store keeps them (Vector's journald source renames MESSAGE to
# `message` and _HOSTNAME to `host`, v0.57.0 src/sources/journald.rs), then logstack's own.
SIGNED_FIELDS: tuple[str, ...] = (
    "message",
    "host",
    "SYSLOG_IDENTIFIER",
    "SYSLOG_PID",
    "_PID",
    "_UID",
    "_COMM",
    "_EXE",
    "_AUDIT_LOGINUID",
    "__REALTIME_TIMESTAMP",
    "__CURSOR",
    "_BOOT_ID",
    "_MACHINE_ID",
    "logstack_host",
    "logstack_config",
    "logstack_kid",
    "logstack_signed",
)
SIGNATURE_COLUMNS: tuple[str, ...] = ("logstack_kid", "logstack_signed", "logstack_sig")
