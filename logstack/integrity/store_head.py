"""The seal chain's end, also recorded in the store: a state directory put back is found without an anchor.

Each `seal` run that moves the chain's end appends a row to the store's `logstack_seal_heads` table (append
mode: the row cannot be updated, and the ingest user that writes it is write-only). The row names the chain
(the hash of its first seal), the number and hash of its last seal, and the store's time, under the seal key.
`seal` and `verify` compare the newest such row with the chain in the state directory: a chain that does not
reach it, or is another chain than the one the store saw last, was rolled back or replaced.

What it does not stop: someone who can both put back the state directory and delete rows from the store (the
store's admin, or its files) can remove the newer rows too; an exported chain (`--anchor`) kept elsewhere
still finds that. Someone with the ingest password alone can add rows, but not ones the seal key signed:
those are reported, never believed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from logstack.base.clock import iso
from logstack.integrity.seal_chain import Seal

HEAD_TABLE = "logstack_seal_heads"


@dataclass(frozen=True)
class StoreHead:
    """Where a chain ended when a seal run recorded it in the store."""

    chain: str  # hash of the chain's first seal ("" for an empty chain)
    seq: int
    hash: str
    at: int  # the store's time of the record, µs

    def body(self) -> bytes:
        return orjson.dumps(
            {"chain": self.chain, "seq": self.seq, "hash": self.hash, "at": iso(self.at)}, option=orjson.OPT_SORT_KEYS
        )

    def mac(self, key: bytes) -> str:
        return hmac.new(key, b"store-head\0" + self.body(), hashlib.sha256).hexdigest()


def head_of(chain: list[Seal], at: int) -> StoreHead:
    """The record of `chain`'s end, made at store time `at`."""
    if not chain:
        return StoreHead("", 0, "", at)
    return StoreHead(chain[0].hash, chain[-1].seq, chain[-1].hash, at)


@dataclass
class StoreHeads:
    """What the store holds: the newest record the seal key signed, and how many rows it did not sign."""

    newest: StoreHead | None
    forged: int = 0


def newest_head(rows: Iterable[tuple[StoreHead, str]], key: bytes) -> StoreHeads:
    """The newest genuine record among `(record, mac)` pairs read from the store (by store time, then seal)."""
    found = StoreHeads(None)
    for head, mac in rows:
        if not hmac.compare_digest(head.mac(key), mac):
            found.forged += 1
        elif found.newest is None or (head.at, head.seq) > (found.newest.at, found.newest.seq):
            found.newest = head
    return found


def rolled_back(chain: list[Seal], recorded: StoreHead | None) -> str | None:
    """Why `chain` is not at least where the store last saw it end, or None."""
    if recorded is None or recorded.seq == 0:
        return None
    where = f"the store recorded seal {recorded.seq} at {iso(recorded.at)}"
    if not chain or chain[0].hash != recorded.chain:
        return f"is not the chain the store saw last ({where} of another chain): replaced or put back"
    if len(chain) < recorded.seq or chain[recorded.seq - 1].hash != recorded.hash:
        return f"ends before where {where}: rolled back (an older state directory put back?)"
    return None


def head_from_row(row: dict[str, Any], micros: int) -> tuple[StoreHead, str]:
    """A `(record, mac)` pair from a row of the heads table; a malformed row gets a MAC that cannot match."""
    try:
        head = StoreHead(str(row["chain"]), int(row["seq"]), str(row["hash"]), micros)
        return head, str(row["mac"])
    except (KeyError, TypeError, ValueError):
        return StoreHead("", -1, "", micros), ""
