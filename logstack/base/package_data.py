"""Files shipped with logstack: the templates and the example inventory, installed or in a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from logstack.base.errors import BadInputError


def package_data(name: str) -> Path:
    """A file or directory shipped with logstack: inside the installed package, or top-level in a checkout."""
    packaged = Path(str(resources.files("logstack").joinpath(name)))
    if packaged.exists():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / name
    if checkout.exists():
        return checkout
    raise BadInputError(f"{name} not found in the logstack package")  # pragma: no cover


def templates_dir() -> Path:
    """The Jinja2 templates."""
    return package_data("templates")


def example_inventory_path() -> Path:
    """The bundled example inventory."""
    return package_data("inventory.example.yaml")
