"""A site directory: inventory.yaml with secrets.yaml, pki/ and state beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from logstack.base.errors import BadInputError
from logstack.base.fsutil import atomic_write
from logstack.base.package_data import example_inventory_path
from logstack.pki import PKI, CARecord
from logstack.site.inventory import load_inventory
from logstack.site.secrets import generate_secrets, secrets_path, write_secrets


@dataclass(frozen=True)
class InitResult:
    """What `init_site` created."""

    inventory: Path
    secrets: Path
    ca: CARecord


def init_site(directory: Path, passphrase: bytes | None = None) -> InitResult:
    """Scaffold a site: inventory from the example, secrets.yaml (0600) and the CA."""
    inventory = directory / "inventory.yaml"
    secrets = secrets_path(directory)
    for existing in (inventory, secrets):
        if existing.exists():
            raise BadInputError(f"{existing}: already exists; not overwriting a site")
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(inventory, first_inventory(example_inventory_path().read_text(encoding="utf-8")).encode(), mode=0o644)
    write_secrets(secrets, generate_secrets())
    inv = load_inventory(inventory)
    ca, _created = PKI.for_inventory(inv).ensure_ca(passphrase)
    return InitResult(inventory=inventory, secrets=secrets, ca=ca)


def first_inventory(example: str) -> str:
    """The example inventory as a new site's first one: its alert destinations shown but commented out, so a
    site works before any is configured (each needs a URL, a mail server or a program of its own)."""
    lines = example.splitlines(keepends=True)
    out, inside = [], False
    for line in lines:
        if line.rstrip() == "  alerts:":
            out.append(
                "  alerts: []  # none yet: to turn destinations on, delete this line and uncomment the block below\n"
            )
            out.append("  # alerts:\n")
            inside = True
            continue
        if inside and (line.startswith("    ") or not line.strip()):
            out.append("  #" + line[2:] if line.strip() else line)
            continue
        inside = False
        out.append(line)
    return "".join(out)
