r"""The message table: every format a login program writes, as data, with where in its source it is.

Each row of `messages/*.yaml` is one printf format as the program's source writes it (composite formats
expanded into each concrete shape), the names of the values its conversions carry, the fact kind the
classifier gives it and the source location (repository, tag, file:line) a reviewer can check it against.
OpenSSH's rows are compiled into the classifier's patterns; the other programs' rows are the oracle the
structured parsers are tested against (`tests/test_message_table.py` renders every row with sample values).

A format compiles to an anchored pattern whose conversions become named groups: addresses and numbers
are possessive runs of their characters, and at most one free-text conversion per pattern may be lazy
(the one followed by literal text), so matching stays linear in the message whatever a local user writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from logstack.classify.kinds import FactKind

MESSAGES_DIR = Path(__file__).with_name("messages")
CLASSES = frozenset({"attempt", "failure", "refusal", "success", "session", "privilege", "account", "lockout", "noise"})
# A C conversion: flags, width, precision, length modifier, conversion letter.
CONVERSION = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z|j|t)?[sdiuxcfm]|%%")

# What each named value may contain. `ip` is an address as sshd prints it (IPv6 scope ids included);
# `host` may be a resolved name (UseDNS). Free-text names get `.*?`/`.*+` by position.
_RUNS = {
    "ip": r"[0-9A-Fa-f:.]++(?:%[\w.-]++)?",
    "host": r"[^\s\[\]'`]++",
    "port": r"\d++",
    "code": r"\d++",
    "method": r"[^\s:]++",
    "tty": r"[^\s\]']++",
    # account names: never a space, a colon (the passwd separator) or a quote around them
    "login": r"[^\s:'\"`()\[\]]++",
    # a name as a client sent it, where sshd's own text has no colon before the address (see openssh.yaml)
    "name": r"[^:]*",
    "target": r"[^\s:'\"`()\[\]]++",
    "actor": r"[^\s:'\"`()\[\]]++",
}
# Values without spaces that may end a line (key type, fingerprint): a format whose text after its last read
# value holds only these, numbers and fixed text is matched to the end of the line, so text a client chose
# after the address (a certificate ID) cannot make a shorter format's pattern match.
TOKEN = "token"
# Names matched by another name's run: a login name where sshd writes an existing account (no spaces).
_ALIASES = {"login": "user", "name": "user"}
# Values the classifier reads (as named groups); a conversion of any other name is matched and dropped.
READ = frozenset({*_RUNS, "user", "reason", "command"})


class MessageTableError(ValueError):
    """A row of the message table is malformed (caught by the table's own tests, never at run time)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One format a program writes, classified."""

    program: str
    format: str
    fields: tuple[str, ...]
    kind: str
    cls: str
    source: str
    versions: str
    kind_preauth: str | None = None  # the kind when sshd marks the line `[preauth]`
    reason: str | None = None  # a fixed reason (policy refusals say which policy)
    method: str | None = None  # a fixed authentication method (auth_log's shapes name it literally)
    invalid_user: bool = False
    note: str | None = None  # how an expanded shape arises, or a version detail
    pam_type: str | None = None  # a PAM module's row: the management group it logs under (auth, session, …)
    # the line ends where the format does: a shape whose last value is an address with nothing after it
    # (before 7.4p1 sshd wrote no port) is read only from a whole line, so a longer line of another shape
    # cannot match it, and a name a client chose cannot stand in for the address
    ends_line: bool = False

    # read on every sshd line: set once from the format and fields (see __post_init__)
    one_address: bool = field(init=False, default=False)
    short_auth_log: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        # a disconnect shape whose name and text a client may both choose: it reads an address only when
        # the line names one
        object.__setattr__(self, "one_address", "name" in self.fields)
        # an auth_log shape without the `: <info>` tail a longer shape of the same line carries
        object.__setattr__(self, "short_auth_log", self.program == "sshd" and self.format.endswith(" ssh2"))

    @property
    def compiled(self) -> bool:
        """Whether this row is one of the classifier's rules. sshd's are all its rules; another program's
        parser reads its lines first, and its rows serve for what that parser leaves unread. A format with
        two free-text values before the last one read cannot be taken apart in linear time and stays with
        the parser. Rows of what the classifier does not read (kind `*_other`) document coverage."""
        if self.program == "sshd" and self.kind == "ssh_other":
            return False  # what no sshd rule reads is ssh_other already: no rule needed
        return _compiles(self)

    def pattern(self) -> str:
        """The anchored regular expression this format compiles to."""
        return compile_format(self.format, self.fields, self.ends_line)

    @property
    def weight(self) -> int:
        """How much fixed text the pattern checks (see `literal_weight`)."""
        return literal_weight(self.format, self.fields, self.ends_line)


def _compiles(message: Message) -> bool:
    try:
        _compile(message.format, message.fields, message.ends_line)
    except MessageTableError:
        return False
    return True


def compile_format(fmt: str, names: tuple[str, ...], ends_line: bool = False) -> str:
    """`fmt` as a regex: literal text escaped, conversions as the runs their names give them."""
    return _compile(fmt, names, ends_line)[0]


def literal_weight(fmt: str, names: tuple[str, ...], ends_line: bool = False) -> int:
    """How much fixed text the compiled pattern checks: the more, the more specific the rule."""
    return _compile(fmt, names, ends_line)[1]


def _conversion(conversion: str, name: str, following: str, final: bool) -> tuple[str, str]:
    """The group name (`-`: not kept) and the pattern one conversion compiles to."""
    if name == TOKEN:
        return "-", r"[^\s,]++"  # key types and fingerprints hold no comma
    if name not in READ:
        name = "-"
    if conversion[-1] in "diux" and name not in _RUNS:
        return name, r"-?\d++"
    if conversion[-1] == "f":
        return name, r"-?\d++(?:\.\d++)?"
    if name in _RUNS:
        body = _RUNS[name]
        follower = following[:1]
        if name == "ip" and follower == ":":
            # `from ADDR: CODE: …` (sshd before 7.2p1): an IPv6 address holds colons too, so the run gives back
            # to the colon that ends it; it holds no space, so what it gives back is bounded by its length
            return name, r"[0-9A-Fa-f:.]{1,45}(?:%[\w.-]++)?"  # 45: the longest address text
        if body.startswith("[^") and follower and not follower.isspace():
            # a possessive run never gives back: it must stop before the text that ends it (`alice,`)
            body = "[^" + re.escape(follower) + body[2:]
        return _ALIASES.get(name, name), body
    if final and not following:
        return name, ".*+"
    # greedy: a name holding the text that follows it (`x from 10.0.0.1 port 22`) cannot displace the
    # daemon's own address, which comes last
    return name, ".*"


@cache
def _compile(fmt: str, names: tuple[str, ...], ends_line: bool = False) -> tuple[str, int]:
    """A format is read up to the last value a rule uses and the words after it, up to the next text value;
    what follows is not matched (versions differ in it). A format whose rest holds only numbers and tokens
    (`ssh2: %s %s`, key type and fingerprint) is matched to the end of the line instead."""
    parts = CONVERSION.split(fmt)
    conversions = CONVERSION.findall(fmt)
    real = [c for c in conversions if c != "%%"]
    if len(real) != len(names):
        raise MessageTableError(f"{fmt!r}: {len(real)} conversions but {len(names)} field names")
    last_read = max((i for i, n in enumerate(names) if n in READ), default=-1)
    out = ["^"]
    weight = 0
    used: set[str] = set()
    free = 0
    index = 0
    rest = zip(names[last_read + 1 :], real[last_read + 1 :], strict=True)
    to_end = last_read >= 0 and len(names) > last_read + 1 and all(n == TOKEN or c[-1] in "diuxf" for n, c in rest)
    # sshd's auth_log lines end in `ssh2` unless a longer shape (with client-chosen text) follows: those are
    # rows of their own, so the short shape must not match them
    to_end = to_end or (last_read == len(names) - 1 and fmt.endswith(" ssh2"))
    if ends_line and last_read != len(names) - 1:
        raise MessageTableError(f"{fmt!r}: ends_line is for a format whose last value is one it reads")
    for i, literal in enumerate(parts):
        if not to_end and index - 1 >= last_read and i < len(conversions) and conversions[i][-1] not in "diuxf%":
            # after the last value read, up to a text value: the literal's words, not what joins them to it
            tail = literal.rstrip(" :=([{'\"")
            out.append(re.escape(tail))
            weight += len(tail)
            break
        out.append(re.escape(literal))
        weight += len(literal)
        if i == len(conversions):
            break
        conversion = conversions[i]
        if conversion == "%%":
            out.append("%")
            weight += 1
            continue
        name, body = _conversion(conversion, names[index], parts[i + 1], i == len(conversions) - 1)
        index += 1
        free += body == ".*"
        if name == "-" or name in used:
            out.append(f"(?:{body})")
        else:
            used.add(name)
            out.append(f"(?P<{name}>{body})")
    if free > 1:
        raise MessageTableError(f"{fmt!r}: more than one free-text value before the last read one (backtracking)")
    if ends_line:
        out.append(r"\Z")
        weight += 1
    elif to_end:
        # FIDO keys add `, signature count = N` (OpenSSH >= 8.2, auth2-pubkey.c format_method_key)
        out.append(r"(?:, signature count = \d++)?\Z")
        weight += 1
    return "".join(out), weight


def _row(program: str, item: dict[str, object], where: str) -> Message:
    try:
        message = Message(
            program=program,
            format=str(item["format"]),
            fields=tuple(str(f) for f in item.get("fields") or ()),  # type: ignore[attr-defined]
            kind=str(item["kind"]),
            cls=str(item["class"]),
            source=str(item["source"]),
            versions=str(item["versions"]),
            kind_preauth=str(item["kind_preauth"]) if item.get("kind_preauth") else None,
            reason=str(item["reason"]) if item.get("reason") else None,
            method=str(item["method"]) if item.get("method") else None,
            invalid_user=bool(item.get("invalid_user", False)),
            note=str(item["note"]) if item.get("note") else None,
            pam_type=str(item["pam_type"]) if item.get("pam_type") else None,
            ends_line=bool(item.get("ends_line", False)),
        )
    except KeyError as missing:
        raise MessageTableError(f"{where}: missing {missing}") from None
    known_kinds = {k.value for k in FactKind}
    for kind in (message.kind, message.kind_preauth):
        if kind is not None and kind not in known_kinds:
            raise MessageTableError(f"{where}: unknown kind {kind!r}")
    if message.cls not in CLASSES:
        raise MessageTableError(f"{where}: unknown class {message.cls!r}")
    if len([c for c in CONVERSION.findall(message.format) if c != "%%"]) != len(message.fields):
        raise MessageTableError(f"{where}: {message.format!r}: conversions and field names differ in number")
    return message


@cache
def load_table(directory: Path = MESSAGES_DIR) -> tuple[Message, ...]:
    """Every row of the message table, in file order (the order is precedence within a program)."""
    rows: list[Message] = []
    for path in sorted(directory.glob("*.yaml")):
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        for program, items in (document or {}).items():
            for n, item in enumerate(items, 1):
                rows.append(_row(str(program), item, f"{path.name}: {program} row {n}"))
    return tuple(rows)


def programs() -> list[str]:
    """The programs (and PAM modules) the table has rows for."""
    return sorted({m.program for m in load_table()})


def rows_of(program: str) -> tuple[Message, ...]:
    """The rows of one program."""
    return tuple(m for m in load_table() if m.program == program)
