"""One error hierarchy; the CLI catches `LogstackError` once and turns it into a one-line message."""

import traceback
from pathlib import Path

from logstack.base.exit_codes import ExitStatus


class LogstackError(Exception):
    """Base of every error logstack reports to its user."""

    exit_status: ExitStatus = ExitStatus.RUNTIME_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadInputError(LogstackError):
    """The user gave something unusable: arguments, files, values."""

    exit_status = ExitStatus.BAD_INPUT


class InventoryError(BadInputError):
    """The inventory (or a file beside it) is invalid; the message names file:line and the YAML path."""


class SecretsError(BadInputError):
    """secrets.yaml is missing, unreadable or holds an unusable value."""


class PKIError(LogstackError):
    """Certificate authority or certificate state is unusable."""

    exit_status = ExitStatus.BAD_INPUT


class RevokedHostError(PKIError):
    """A revoked host must not silently get a new certificate."""


class RuntimeFailure(LogstackError):
    """Something outside logstack failed: SSH, database, a remote command."""

    exit_status = ExitStatus.RUNTIME_FAILURE


class InternalError(LogstackError):
    """A defect in a process of logstack's own (the store's reading process), reported where it happened, never
    with its message (it may quote a secret the code was handling)."""

    exit_status = ExitStatus.INTERNAL


def defect(exc: BaseException) -> str:
    """A defect as it is reported: its type and where it happened (file:line), never its message (it may quote a
    secret the code was handling)."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
