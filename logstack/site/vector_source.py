"""Where Vector comes from: the version a site pins, its signed repositories and their keys' fingerprints.

Vector's packages are published by Datadog at apt.vector.dev and yum.vector.dev (vector v0.57.0
website/content/en/highlights/2023-11-07-new-linux-repos.md: `deb ... https://apt.vector.dev/ stable vector-0`,
`baseurl = https://yum.vector.dev/stable/vector-0/$basearch/`, keys DATADOG_APT_KEY_CURRENT.public and
DATADOG_RPM_KEY_CURRENT.public). The signing keys since 2024 are C0962C7D (apt) and B01082D3 (rpm)
(website/cue/reference/releases/0.40.1.cue); their full fingerprints, and those of the keys before and
after them, are the ones Datadog publishes for its Linux packages and repository metadata. A key file whose
fingerprint is none of these is refused, whatever the URL served.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from logstack.site.field_types import Model, pattern

# The release logstack's rendered configs are checked against (tests/reference: Vector 0.57 option trees).
VECTOR_VERSION = "0.57.0"
APT_REPOSITORY = "https://apt.vector.dev/ stable vector-0"
RPM_REPOSITORY = "https://yum.vector.dev/stable/vector-0/$basearch/"
APT_KEY = "https://keys.datadoghq.com/DATADOG_APT_KEY_CURRENT.public"
RPM_KEY = "https://keys.datadoghq.com/DATADOG_RPM_KEY_CURRENT.public"
# Only the keys in use: a retired key (F14F620E and 382E94DE for apt, FD4BF915 and E09422B3 for rpm) in the
# hands of whoever holds it could sign a repository index with a backdated signature.
APT_FINGERPRINTS = (
    "5F1E256061D813B125E156E8E6266D4AC0962C7D",  # C0962C7D, signing since 2024
    "DBD145AB63EAC0BEE68F004D33EE313BAD9589B7",  # its successor in Datadog's list
)
RPM_FINGERPRINTS = (
    "7408BFD56BC5BF0C361AAAE85D88EEA3B01082D3",  # B01082D3, signing since 2024
    "2416A37757B1BB0268B3634B52AFC5994F09D16B",  # its successor in Datadog's list
)

_VERSION_RE = re.compile(r"(?:0|[1-9][0-9]{0,3})\.(?:0|[1-9][0-9]{0,3})\.(?:0|[1-9][0-9]{0,3})")
# `URL suite component...` (apt) or a base URL (dnf): https for the world, file: for a mirror on the machine
_APT_RE = re.compile(r"(?:https://[A-Za-z0-9.-]+(?::\d{1,5})?|file:)/[A-Za-z0-9._/~-]*(?: [A-Za-z0-9._~-]+){1,4}")
_RPM_RE = re.compile(r"(?:https://[A-Za-z0-9.-]+(?::\d{1,5})?|file:)/[A-Za-z0-9._/~$-]*")
_KEY_RE = re.compile(r"(?:https://[A-Za-z0-9.-]+(?::\d{1,5})?|file:)/[A-Za-z0-9._/~-]+")
_FINGERPRINT_RE = re.compile(r"[0-9A-F]{40}")


def _fingerprints(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value or not all(_FINGERPRINT_RE.fullmatch(f) for f in value):
        raise ValueError("fingerprints are 40 upper-case hexadecimal digits, at least one")
    return value


Fingerprints = Annotated[tuple[str, ...], AfterValidator(_fingerprints)]


class VectorSource(Model):
    """`vector:` in the inventory: the version every machine runs and where it comes from."""

    version: Annotated[str, pattern(_VERSION_RE, "a version like 0.57.0")] = VECTOR_VERSION
    manage_packages: bool = True  # install or upgrade it on every machine; false: the operator does
    apt_repository: Annotated[str, pattern(_APT_RE, "an apt source (URL suite component)")] = APT_REPOSITORY
    rpm_repository: Annotated[str, pattern(_RPM_RE, "a dnf base URL")] = RPM_REPOSITORY
    apt_key: Annotated[str, pattern(_KEY_RE, "an https:// or file:/ key URL")] = APT_KEY
    rpm_key: Annotated[str, pattern(_KEY_RE, "an https:// or file:/ key URL")] = RPM_KEY
    apt_fingerprints: Fingerprints = APT_FINGERPRINTS
    rpm_fingerprints: Fingerprints = RPM_FINGERPRINTS
