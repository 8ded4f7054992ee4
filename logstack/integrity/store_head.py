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
import re
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


RETIRED = -1  # the seq of a record that says a chain was given up for a new one (`seal --start-anew`)
_HEX = re.compile(r"[0-9a-f]{64}")


def head_of(chain: list[Seal], at: int) -> StoreHead:
    """The record of `chain`'s end, made at store time `at`."""
    if not chain:
        return StoreHead("", 0, "", at)
    return StoreHead(chain[0].hash, chain[-1].seq, chain[-1].hash, at)


def retirement_of(chain: list[Seal], at: int) -> StoreHead | None:
    """The record that `chain` was given up (None: an empty chain needs none)."""
    return StoreHead(chain[0].hash, RETIRED, chain[-1].hash, at) if chain else None


@dataclass
class StoreHeads:
    """What the store holds for one chain: its newest record the seal key signed, whether it was retired,
    and how many rows (of any chain) the seal key did not sign."""

    newest: StoreHead | None
    forged: int = 0
    retired: StoreHead | None = None


def newest_head(rows: Iterable[tuple[StoreHead, str]], key: bytes, chain: str) -> StoreHeads:
    """The newest genuine record of `chain` among `(record, mac)` pairs read from the store (by store time,
    then seal). Each sealer (the server's unit, an operator's `seal -i`) keeps a chain of its own."""
    found = StoreHeads(None)
    for head, mac in rows:
        if not hmac.compare_digest(head.mac(key).encode(), mac.encode("utf-8", "replace")):
            found.forged += 1
        elif head.chain != chain or not chain:
            continue
        elif head.seq == RETIRED:
            found.retired = head
        elif found.newest is None or (head.at, head.seq) > (found.newest.at, found.newest.seq):
            found.newest = head
    return found


def rolled_back(chain: list[Seal], recorded: StoreHeads) -> str | None:
    """Why `chain` is not at least where the store last saw it end, or was given up, or None."""
    if recorded.retired is not None:
        return (
            f"was given up for a new chain at {iso(recorded.retired.at)} (seal --start-anew): an old state "
            "directory put back"
        )
    newest = recorded.newest
    if newest is None or newest.seq == 0:
        return None
    if len(chain) < newest.seq or chain[newest.seq - 1].hash != newest.hash:
        where = f"the store recorded seal {newest.seq} at {iso(newest.at)}"
        return f"ends before where {where}: rolled back (an older state directory put back?)"
    return None


def head_from_row(row: dict[str, Any], micros: int) -> tuple[StoreHead, str]:
    """A `(record, mac)` pair from a row of the heads table; a malformed row (anyone with the ingest password
    can write one) gets a MAC that cannot match."""
    chain, digest, mac, seq = row.get("chain"), row.get("hash"), row.get("mac"), row.get("seq")
    well_formed = (
        all(isinstance(v, str) and _HEX.fullmatch(v) for v in (chain, digest, mac))
        and isinstance(seq, int)
        and not isinstance(seq, bool)
        and RETIRED <= seq < 1 << 62
    )
    if not well_formed:
        return StoreHead("", -2, "", micros), ""
    return StoreHead(str(chain), int(seq), str(digest), micros), str(mac)  # type: ignore[arg-type]
