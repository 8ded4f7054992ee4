"""Sealing run against a store and a site: what `logstack seal` and `logstack verify` do (the chain itself
is logstack.integrity.seal_chain)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from logstack.base.clock import MILLISECOND, SECOND, iso
from logstack.base.errors import BadInputError, SecretsError
from logstack.base.fsutil import ensure_private_dir, exclusive
from logstack.base.safe_read import KiB, read_file
from logstack.integrity.keyring import keyring_path, load_keyring
from logstack.integrity.seal_chain import (
    SEALS,
    STARTED,
    Finding,
    Seal,
    SealChainError,
    SealResult,
    VerifyResult,
    cut_short,
    head_recorded,
    last_verification,
    read_chain,
    read_head,
    record_verification,
    seal_hours,
    verify_hours,
    write_head,
)
from logstack.integrity.store_head import HEAD_TABLE, StoreHead, StoreHeads, head_of, rolled_back
from logstack.site.inventory import Inventory
from logstack.site.secrets import load_secrets, secrets_path
from logstack.store.greptime import DatabaseConfig, read_password, ttl_seconds


class Store(Protocol):
    """What sealing reads from the logs table (analysis's DatabaseSource)."""

    def rows(self, start: int, end: int) -> Iterator[dict[str, Any]]: ...
    def oldest(self) -> int | None: ...
    def store_now(self) -> int: ...


class HeadLog(Protocol):
    """The store's records of where each sealer's chain ended (logstack.store.seal_heads)."""

    writable: bool

    def summary(self, key: bytes, sealer: str) -> StoreHeads | None: ...
    def append(self, head: StoreHead, mac: str) -> None: ...
    def stamp(self, micros: int) -> int: ...


@dataclass(frozen=True)
class Recording:
    """Where the chain's end is recorded in the store, and as which sealer (`server`, `site`)."""

    heads: HeadLog
    sealer: str


def seal_store(
    store: Store,
    state_dir: Path,
    key: bytes,
    delay: int,
    start_anew: bool = False,
    ttl: int | None = None,
    accept_chain: bool = False,
    recording: Recording | None = None,
) -> SealResult:
    """Seal the store's settled hours into `state_dir`'s chain. A chain shorter than where it ended when last
    sealed (cut, replaced, deleted) is an error: re-sealing would seal whatever the store holds now. Only
    `start_anew` begins a new chain then. A new chain starts at the oldest row, or the retention limit.
    One seal at a time: a second one while another runs is refused (two would both extend the chain). With
    `recording`, a chain that is not where the store last saw this sealer's chain end is refused the same way,
    and the new end is recorded in the store (the sealer's newest record is the chain that must be there)."""
    with exclusive(state_dir / SEAL_LOCK, wait=False, what="another `logstack seal`"):
        recorded = recording.heads.summary(key, recording.sealer) if recording is not None else None
        if start_anew and recording is not None and recording.heads.writable:
            recorded = _give_up(store, recording, state_dir, key, recorded)
        result, chain = _seal(store, state_dir, key, delay, start_anew, ttl, accept_chain, recorded, recording)
        if recording is not None and recording.heads.writable:
            result.recorded = _record_end(store, recording, state_dir, key, recorded, chain)
        return result


def _give_up(
    store: Store, recording: Recording, state_dir: Path, key: bytes, recorded: StoreHeads | None
) -> StoreHeads | None:
    """Before `--start-anew` sets the chain aside, record in the store that it is given up: from then on that
    chain put back is refused, even if the new chain's first record cannot be written. A record that cannot be
    written stops the restart, changing nothing."""
    try:
        old = read_chain(state_dir / SEALS, key)
    except SealChainError:
        return recorded  # unreadable: nothing genuine to give up
    given_up = head_of(recording.sealer, old, _next_stamp(store, recording, recorded), given_up=True)
    if given_up is None:
        return recorded
    recording.heads.append(given_up, given_up.mac(key))
    return StoreHeads(given_up, recorded.forged if recorded is not None else 0)


def _next_stamp(store: Store, recording: Recording, recorded: StoreHeads | None) -> int:
    """The store time of a new record: later than the sealer's newest, even within one clock tick."""
    at = recording.heads.stamp(store.store_now())
    newest = recorded.newest if recorded is not None else None
    return max(at, newest.at + MILLISECOND) if newest is not None else at


def _record_end(
    store: Store, recording: Recording, state_dir: Path, key: bytes, recorded: StoreHeads | None, chain: list[Seal]
) -> bool:
    """Record the chain's end in the store when it moved, then in the head that it was; whether it wrote."""
    head = head_of(recording.sealer, chain, _next_stamp(store, recording, recorded))
    if head is None:
        return False
    newest = recorded.newest if recorded is not None else None
    wrote = newest is None or (newest.chain, newest.seq, newest.hash) != (head.chain, head.seq, head.hash)
    if wrote:
        recording.heads.append(head, head.mac(key))
    write_head(state_dir / STARTED, key, chain, recorded=True)
    return wrote


SEAL_LOCK = "seal.lock"


def _seal(
    store: Store,
    state_dir: Path,
    key: bytes,
    delay: int,
    start_anew: bool,
    ttl: int | None,
    accept_chain: bool,
    recorded: StoreHeads | None,
    recording: Recording | None,
) -> tuple[SealResult, list[Seal]]:
    """Seal what has settled; the result and the chain as it now ends."""
    now = store.store_now()
    chain_path, head_path = state_dir / SEALS, state_dir / STARTED
    if start_anew and chain_path.exists():  # aside unread: a chain that cannot be read is replaced too
        chain_path.replace(chain_path.with_name(f"{SEALS}.replaced-{now}"))
    chain = read_chain(chain_path, key)
    cut = None if start_anew or accept_chain else cut_short(chain, read_head(head_path, key))
    if recording is not None and not (cut or start_anew or accept_chain):
        cut = rolled_back(chain, recorded, head_recorded(head_path, key))
    if cut:
        raise SealChainError(
            f"{chain_path}: the seal chain {cut}; restore the chain (an exported copy shorter than it was is "
            "taken with --accept-chain: hours after its end are sealed as the store holds them now), or start "
            "a new chain with --start-anew"
        )
    oldest = None
    if not chain:
        oldest = store.oldest()
        if oldest is not None and ttl is not None:
            oldest = max(oldest, now - ttl)
    result = seal_hours(chain_path, chain, key, store.rows, oldest, now, delay, iso(now))
    chain = chain + result.sealed
    write_head(head_path, key, chain)
    return result, chain


def verify_store(
    store: Store,
    state_dir: Path,
    key: bytes,
    period: tuple[int | None, int | None],
    ttl: int | None,
    anchor: Path | None = None,
    recording: Recording | None = None,
) -> VerifyResult:
    """Check the chain (against the exported `anchor` and the store's record of its end) and every sealed hour
    against the store; the outcome is kept for the report."""
    now = store.store_now()
    marks = read_chain(anchor, key) if anchor is not None else None
    if anchor is not None and not marks:
        raise SealChainError(f"{anchor}: no exported chain to check against")
    # the store's records before the chain: a seal that extends the chain meanwhile is no false rollback
    recorded = recording.heads.summary(key, recording.sealer) if recording is not None else None
    head = read_head(state_dir / STARTED, key)
    chain = read_chain(state_dir / SEALS, key)
    result = verify_hours(chain, store.rows, period[0], now, ttl, marks, head=head, until=period[1])
    if recording is not None:
        _check_recorded_end(result, chain, recorded, head_recorded(state_dir / STARTED, key))
    record_verification(state_dir, result, now, key)
    return result


def _check_recorded_end(result: VerifyResult, chain: list[Seal], recorded: StoreHeads | None, noted: bool) -> None:
    if recorded is None and not noted:
        result.notes.append(f"the store keeps no record of the chain's end (no {HEAD_TABLE} table: run init-server)")
        return
    if recorded is not None and recorded.forged:  # the ingest password can write them; never believed
        result.notes.append(f"{recorded.forged} rows of {HEAD_TABLE} were not made with the seal key (ignored)")
    back = rolled_back(chain, recorded, noted)
    if back:
        result.findings.append(Finding(None, "", back))
    elif recorded is not None and recorded.newest is None and chain:
        result.notes.append("the store holds no record of this chain's end yet (seal runs with the ingest user)")


@dataclass(frozen=True)
class SealSite:
    """Where a site's seals live, the key they are signed with, the store they cover and its retention."""

    database: DatabaseConfig
    state_dir: Path
    seal_key: bytes
    ttl: int | None


def seal_site(
    inv: Inventory | None,
    database: DatabaseConfig,
    data_dir: Path | None,
    signing_keys: Path | None,
    seal_key: Path | None = None,
    ttl: str | None = None,
) -> SealSite:
    """The seal settings: from the site (its key ring's seal key, state directory, TTL), or on the server
    from the deployed seal key file and the state directory the analysis service keeps."""
    if seal_key is not None:
        key = _read_seal_key(seal_key)
    elif inv is not None or signing_keys is not None:
        ring_path = signing_keys or keyring_path(inv.site_dir)  # type: ignore[union-attr]
        key = load_keyring(ring_path, missing="no such key ring (the seal key is kept in it)").seal_key
        if not key:
            raise SecretsError(f"{ring_path}: no seal key yet (run `logstack init-server` or enroll a host)")
    else:
        raise BadInputError("name the site (-i INVENTORY) or the seal key (--seal-key FILE)")
    if data_dir is None and inv is None:
        raise BadInputError("--data-dir is needed without an inventory")
    state_dir = data_dir or inv.site_dir / "state"  # type: ignore[union-attr]
    if state_dir.exists() and not state_dir.is_dir():
        raise BadInputError(f"{state_dir}: not a directory (the seal chain's state directory)")
    ensure_private_dir(state_dir)
    ttl_text = ttl if ttl is not None else inv.server.ttl if inv is not None else "forever"
    seconds = ttl_seconds(ttl_text)
    return SealSite(database, state_dir, key, int(seconds * SECOND) if seconds is not None else None)


def _read_seal_key(path: Path) -> bytes:
    try:
        text = read_file(path, "seal key", 4 * KiB, follow_links=True, error=SecretsError).decode("ascii").strip()
        key = bytes.fromhex(text)
    except FileNotFoundError:
        raise SecretsError(f"{path}: seal key not found") from None
    except (OSError, UnicodeDecodeError, ValueError):
        raise SecretsError(f"{path}: not a seal key (64 hexadecimal digits)") from None
    if len(key) != 32:
        raise SecretsError(f"{path}: not a seal key (64 hexadecimal digits)")
    return key


def site_last_verification(site_dir: Path, now: int) -> str | None:
    """The last verification recorded in the site's state directory, checked with the site's seal key."""
    key = load_keyring(keyring_path(site_dir)).seal_key
    return last_verification(site_dir / "state", key, now) if key else None


def ingest_password(inv: Inventory | None, user: str, password_file: Path | None) -> str | None:
    """The ingest user's password: from its file, else (with a site) from the site's secrets; None: neither."""
    if password_file is not None:
        return read_password(password_file)
    if inv is None:
        return None
    path = secrets_path(inv.site_dir)
    if not path.exists():
        return None
    passwords = load_secrets(path).db_passwords
    if user not in passwords:
        raise BadInputError(f"{path}: no password for the ingest user {user!r}")
    return passwords[user]
