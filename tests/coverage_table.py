"""docs/analysis.md's message table coverage: rows per program and class, and the oldest release each was read at.

`python3 -m tests.coverage_table` writes it into docs/analysis.md; tests/test_docs.py checks that it is current.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from logstack.classify.messages import Message, load_table
from tests.generated_section import with_section

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- coverage: made by `python3 -m tests.coverage_table` from the message table; do not edit -->"
END = "<!-- coverage end -->"
CLASS_COLUMNS = ("failure", "refusal", "success", "attempt", "session", "privilege", "account", "lockout", "noise")
_PAM = {"unix_chkpwd", "unix_update"}
_SHADOW = {
    "usermod", "gpasswd", "passwd", "useradd", "newgrp", "userdel", "groupadd", "grpck", "nologin", "groupdel",
    "chfn", "chsh", "pwck", "groupmod", "chage", "vipw", "logoutd",
}  # fmt: skip
_NAMES = {"sshd": "OpenSSH sshd", "systemd-logind": "systemd-logind", "doas": "doas (OpenDoas)"}


def _group(program: str) -> str:
    if program.startswith("pam_") or program in _PAM:
        return "PAM modules"
    if program in _SHADOW:
        return "shadow-utils"
    if program in {"pkexec", "polkitd", "polkit-agent-helper-1"}:
        return "polkit"
    return _NAMES.get(program, program)


def _release(versions: str) -> tuple[tuple[int, ...], str]:
    start = versions.split("..")[0]
    if m := re.fullmatch(r"V_(\d+)_(\d+)_P(\d+)", start):  # OpenSSH portable's tags
        return tuple(int(n) for n in m.groups()), f"{m[1]}.{m[2]}p{m[3]}"
    numbers = tuple(int(n) for n in re.findall(r"\d+", start))
    return numbers, re.sub(r"^(?:Linux-PAM-|sssd-|v)", "", start).replace("_", ".")


def coverage(rows: tuple[Message, ...]) -> str:
    """The table: one line per program (group), its rows by class and the oldest release a row was read at."""
    by_group: dict[str, Counter[str]] = {}
    oldest: dict[str, dict[str, tuple[tuple[int, ...], str]]] = {}
    for row in rows:
        group = _group(row.program)
        by_group.setdefault(group, Counter())[row.cls] += 1
        release = _release(row.versions)
        project = row.source.split()[0].split("/")[-1].replace("systemd-stable", "systemd")
        known = oldest.setdefault(group, {})
        known[project] = min(known.get(project, release), release)
    header = "| program | oldest release read | " + " | ".join(
        "not about access" if c == "noise" else c for c in CLASS_COLUMNS
    )
    out = [header + " | rows |", "|---|---|" + "---:|" * (len(CLASS_COLUMNS) + 1)]
    total: Counter[str] = Counter()
    for group, counts in sorted(by_group.items(), key=lambda kv: -sum(kv[1].values())):
        total += counts
        cells = " | ".join(str(counts[c]) if counts[c] else "" for c in CLASS_COLUMNS)
        releases = ", ".join(f"{project} {text}" for project, (_, text) in sorted(oldest[group].items()))
        out.append(f"| {group} | {releases} | {cells} | {sum(counts.values())} |")
    cells = " | ".join(str(total[c]) for c in CLASS_COLUMNS)
    out.append(f"| **all** | | {cells} | {sum(total.values())} |")
    return "\n".join(out)


def readme_with(body: str, readme: str) -> str:
    """README text with the coverage table replaced."""
    return with_section(readme, BEGIN, END, body)


if __name__ == "__main__":
    path = ROOT / "docs" / "analysis.md"
    path.write_text(readme_with(coverage(load_table()), path.read_text()))
