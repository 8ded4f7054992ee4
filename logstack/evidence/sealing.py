"""Sealing run against a store and a site: what `logstack seal` and `logstack verify` do (the chain itself
is logstack.integrity.seal_chain)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from logstack.base.clock import SECOND, iso
from logstack.base.errors import BadInputError, SecretsError
from logstack.base.fsutil import ensure_private_dir, exclusive
from logstack.base.safe_read import KiB, read_file
from logstack.integrity.keyring import keyring_path, load_keyring
from logstack.integrity.seal_chain import (
    SEALS,
    STARTED,
    SealChainError,
    SealResult,
    VerifyResult,
    cut_short,
    last_verification,
    read_chain,
    read_head,
    record_verification,
    seal_hours,
    verify_hours,
    write_head,
)
from logstack.site.inventory import Inventory
from logstack.store.greptime import DatabaseConfig, ttl_seconds


class Store(Protocol):
    """What sealing reads from the logs table (analysis's DatabaseSource)."""

    def rows(self, start: int, end: int) -> Iterator[dict[str, Any]]: ...
    def oldest(self) -> int | None: ...
    def store_now(self) -> int: ...


def seal_store(
    store: Store,
    state_dir: Path,
    key: bytes,
    delay: int,
    start_anew: bool = False,
    ttl: int | None = None,
    accept_chain: bool = False,
) -> SealResult:
    """Seal the store's settled hours into `state_dir`'s chain. A chain shorter than where it ended when last
    sealed (cut, replaced, deleted) is an error: re-sealing would seal whatever the store holds now. Only
    `start_anew` begins a new chain then. A new chain starts at the oldest row, or the retention limit.
    One seal at a time: a second one while another runs is refused (two would both extend the chain)."""
    with exclusive(state_dir / SEAL_LOCK, wait=False, what="another `logstack seal`"):
        return _seal(store, state_dir, key, delay, start_anew, ttl, accept_chain)


SEAL_LOCK = "seal.lock"


def _seal(
    store: Store, state_dir: Path, key: bytes, delay: int, start_anew: bool, ttl: int | None, accept_chain: bool
) -> SealResult:
    now = store.store_now()
    chain_path, head_path = state_dir / SEALS, state_dir / STARTED
    if start_anew and chain_path.exists():  # aside unread: a chain that cannot be read is replaced too
        chain_path.replace(chain_path.with_name(f"{SEALS}.replaced-{now}"))
    chain = read_chain(chain_path, key)
    cut = None if start_anew or accept_chain else cut_short(chain, read_head(head_path, key))
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
    write_head(head_path, key, chain + result.sealed)
    return result


def verify_store(
    store: Store, state_dir: Path, key: bytes, since: int | None, ttl: int | None, anchor: Path | None = None
) -> VerifyResult:
    """Check the chain and every sealed hour against the store; the outcome is kept for the report."""
    now = store.store_now()
    marks = read_chain(anchor, key) if anchor is not None else None
    if anchor is not None and not marks:
        raise SealChainError(f"{anchor}: no exported chain to check against")
    head = read_head(state_dir / STARTED, key)
    result = verify_hours(state_dir / SEALS, key, store.rows, since, now, ttl, marks, head=head)
    record_verification(state_dir, result, now, key)
    return result


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
