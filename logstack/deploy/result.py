"""One machine's outcome of a deployment: its status, plan, diff, facts and what it gave up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from logstack.base.errors import LogstackError
from logstack.deploy.plan import Plan
from logstack.site.host_facts import HostFacts

Status = Literal["ok", "changed", "failed", "unreachable"]


@dataclass
class HostResult:
    """The outcome for one machine."""

    name: str
    status: Status
    reason: str = ""
    plan: Plan | None = None
    diff: list[str] = field(default_factory=list)
    error: LogstackError | None = field(default=None, repr=False)  # what failed, for callers that re-raise
    facts: HostFacts | None = None
    warnings: list[str] = field(default_factory=list)  # what the configuration gives up on this machine
    delivering: str | None = None  # yes | no | unknown, once delivery was checked
