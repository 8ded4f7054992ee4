"""docs/layout.md, made from the packages' and modules' docstrings.

`python3 -m tests.layout` writes it into docs/layout.md; tests/test_architecture.py checks that it is current.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.generated_section import with_section

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "logstack"
BEGIN = "<!-- layout: made by `python3 -m tests.layout` from the docstrings; do not edit -->"
END = "<!-- layout end -->"


def _summary(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ").replace("|", "\\|")


def layout(order: tuple[str, ...]) -> str:
    """The section's body: one row per package in stage order, its modules and what each holds."""
    rows = [
        "Packages by stage, lowest first; a package imports only itself and the packages above it in this table",
        "(tests/test_architecture.py). Each command module in `commands/` only parses arguments and calls the core.",
        "",
        "| package | holds | modules |",
        "|---|---|---|",
    ]
    for name in order:
        if name == "cli":
            rows.append(f"| `cli.py` | {_summary(PACKAGE / 'cli.py')} | |")
            continue
        folder = PACKAGE / name
        modules = sorted(p for p in folder.rglob("*.py") if p.name != "__init__.py")
        subpackages = sorted(p.parent for p in folder.rglob("__init__.py") if p.parent != folder)
        listed = [f"`{p.relative_to(folder).with_suffix('')}`: {_summary(p)}" for p in modules]
        listed += [f"`{p.relative_to(folder)}/`: {_summary(p / '__init__.py')}" for p in subpackages]
        rows.append(f"| `{name}/` | {_summary(folder / '__init__.py')} | {'<br>'.join(listed)} |")
    return "\n".join(rows)


def readme_with(body: str, readme: str) -> str:
    """README text with the layout section's body replaced."""
    return with_section(readme, BEGIN, END, body)


if __name__ == "__main__":
    from tests.test_architecture import PACKAGE_ORDER

    path = ROOT / "docs" / "layout.md"
    path.write_text(readme_with(layout(PACKAGE_ORDER), path.read_text()))
