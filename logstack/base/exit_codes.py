"""Named exit codes shared by every command."""

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes: scripts, cron and monitoring rely on these values."""

    OK = 0
    FINDINGS = 1  # a check found something: stale render, expiring certificate, alert-level events
    BAD_INPUT = 2  # bad inventory, bad arguments, unusable files
    RUNTIME_FAILURE = 3  # SSH, database, partial fleet failure
    INTERNAL = 70  # a defect in logstack (EX_SOFTWARE): reported in one line, where it happened
