"""The seal chain's end, also recorded in the store: a state directory put back is found without an anchor.

Each `seal` run that moves the chain's end appends a row to the store's `logstack_seal_heads` table (append
mode: the row cannot be updated; the ingest user that writes it cannot read). The row names the sealer (`server`
for the server's unit, `site` for an operator's `seal -i`), its chain (the hash of the chain's first seal), the
number and hash of its last seal and the store's time, all under the seal key. `seal` and `verify` compare the
sealer's newest genuine row with the chain in its state directory: a chain that does not reach it, another chain
(an old one put back, another sealer's, a new one nobody started with `--start-anew`) or an emptied directory is
refused and reported. The state directory's head remembers that its end was recorded, so a table emptied or
dropped later is reported too.

What it does not stop: someone who can put back the state directory and also remove the store's newer rows
(the store's admin or files, or the ingest password: GreptimeDB v1.1.4 lets a write-only user TRUNCATE or DROP,
`src/sql/src/statements/statement.rs` `is_readonly()`) together with the head's record of it; an exported chain
(`verify --anchor`) kept elsewhere still finds that. Rows the seal key did not sign are counted, never believed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from logstack.base.clock import iso
from logstack.integrity.seal_chain import Seal

HEAD_TABLE = "logstack_seal_heads"
SEALER_RE = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoreHead:
    """Where a sealer's chain ended when a seal run recorded it in the store."""

    sealer: str
    chain: str  # hash of the chain's first seal
    seq: int
    hash: str
    at: int  # the store's time of the record, µs

    def body(self) -> bytes:
        fields = {"sealer": self.sealer, "chain": self.chain, "seq": self.seq, "hash": self.hash, "at": iso(self.at)}
        return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)

    def mac(self, key: bytes) -> str:
        return hmac.new(key, b"store-head\0" + self.body(), hashlib.sha256).hexdigest()


GIVEN_UP = 0  # the seq of a record saying the sealer gave this chain up (`seal --start-anew`)


def head_of(sealer: str, chain: list[Seal], at: int, given_up: bool = False) -> StoreHead | None:
    """The record of `chain`'s end (or, `given_up`, that the sealer gives it up), made at store time `at`
    (None: an empty chain has no end to record)."""
    if not chain:
        return None
    return StoreHead(sealer, chain[0].hash, GIVEN_UP if given_up else chain[-1].seq, chain[-1].hash, at)


@dataclass
class StoreHeads:
    """What the store holds for one sealer: its newest record the seal key signed, and how many rows (of any
    sealer) the seal key did not sign."""

    newest: StoreHead | None
    forged: int = 0


def fold_heads(rows: Iterable[tuple[StoreHead, str]], key: bytes, sealer: str) -> StoreHeads:
    """The sealer's newest genuine record among `(record, mac)` pairs (by store time, then seal), read as they
    stream: a table of any size costs one record of memory."""
    found = StoreHeads(None)
    for head, mac in rows:
        if not hmac.compare_digest(head.mac(key).encode(), mac.encode("utf-8", "replace")):
            found.forged += 1
        elif head.sealer == sealer and (
            found.newest is None or (head.at, head.seq) > (found.newest.at, found.newest.seq)
        ):
            found.newest = head
    return found


def rolled_back(chain: list[Seal], recorded: StoreHeads | None, head_recorded: bool) -> str | None:
    """Why `chain` is not at least where the store last saw this sealer's chain end, or None. `recorded` None:
    the store has no table of records; `head_recorded`: the state directory's head says its end was recorded."""
    newest = recorded.newest if recorded is not None else None
    if newest is None:
        if head_recorded:
            return "the store holds no record of its end, though one was written (the table emptied or dropped?)"
        return None
    if newest.seq == GIVEN_UP:  # the sealer started anew: any chain but the one it gave up may follow
        if chain and chain[0].hash == newest.chain:
            return f"was given up by `--start-anew` at {iso(newest.at)}: an old state directory put back"
        return None
    where = f"the store recorded seal {newest.seq} of this sealer's chain at {iso(newest.at)}"
    if not chain:
        return f"is empty, but {where}: the state directory was emptied or replaced"
    if chain[0].hash != newest.chain:
        return (
            f"is not the chain the store recorded last for this sealer (seal {newest.seq} at {iso(newest.at)}): "
            "another chain put in its place"
        )
    if len(chain) < newest.seq or chain[newest.seq - 1].hash != newest.hash:
        return f"ends before where {where}: rolled back (an older state directory put back?)"
    return None


def head_from_row(row: dict[str, Any], micros: int) -> tuple[StoreHead, str]:
    """A `(record, mac)` pair from a row of the heads table; a malformed row (anyone with the ingest password
    can write one) gets a MAC that cannot match."""
    sealer, chain, digest, mac, seq = (row.get(k) for k in ("sealer", "chain", "hash", "mac", "seq"))
    well_formed = (
        isinstance(sealer, str)
        and SEALER_RE.fullmatch(sealer) is not None
        and all(isinstance(v, str) and _HEX.fullmatch(v) for v in (chain, digest, mac))
        and isinstance(seq, int)
        and not isinstance(seq, bool)
        and GIVEN_UP <= seq < 1 << 62
    )
    if not well_formed:
        return StoreHead("", "", -1, "", micros), ""
    return StoreHead(str(sealer), str(chain), int(seq), str(digest), micros), str(mac)  # type: ignore[arg-type]
