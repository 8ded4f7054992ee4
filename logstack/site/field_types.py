"""The field types the site's models share: one definition of an address, a port, a local path, a model."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from logstack.base import validation

Hostname = Annotated[str, AfterValidator(validation.hostname)]
Address = Annotated[str, AfterValidator(validation.address)]
IPAddress = Annotated[str, AfterValidator(validation.ip)]
LocalPath = Annotated[str, AfterValidator(validation.local_path)]
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]
# The ways to reach a machine (logstack/connection/: one module each, chosen by connection.registry)
Transport = Literal["ssh", "local"]
# An S3 key prefix (backups' and the store's object storage alike): no `.` or `..` segment, no leading `/`.
KeyPrefix = Annotated[str, AfterValidator(validation.pattern_check(validation.KEY_PREFIX_RE, "a key prefix"))]


class Model(BaseModel):
    """A part of the inventory: unknown keys are errors, values are frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def pattern(regex: re.Pattern[str], what: str) -> AfterValidator:
    """A validator that takes only values `regex` matches whole."""

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{value[:60]!r} is not {what}")
        return value

    return AfterValidator(check)
