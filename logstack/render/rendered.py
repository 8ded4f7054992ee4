"""Rendered files, the manifest and the review tree: what deployment and review share.

Deployment imports this, not the renderer, so planning and applying load neither Jinja2 nor cryptography.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logstack.base.errors import BadInputError

SERVER_MACHINE = "server"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class RenderedFile:
    """One file for one machine, with everything deployment needs to place it."""

    machine: str  # "server" or "hosts/<name>"
    path: str  # absolute path on the machine
    content: bytes
    owner: str
    group: str
    mode: int
    service: str | None  # service restarted when this file changes
    secret: bool  # holds a secret when rendered for deployment (diffs are hidden)
    unit: bool = False  # a systemd unit or drop-in: daemon-reload when it changes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "path": self.path,
            "owner": self.owner,
            "group": self.group,
            "mode": f"{self.mode:04o}",
            "sha256": self.sha256,
            "service": self.service,
            "secret": self.secret,
            "unit": self.unit,
        }


def manifest_json(files: list[RenderedFile]) -> bytes:
    """The manifest: every file with machine, path, owner, group, mode, sha256 and service."""
    entries = sorted((f.manifest_entry() for f in files), key=lambda e: (e["machine"], e["path"]))
    return (json.dumps({"version": 1, "files": entries}, indent=2) + "\n").encode()


def review_tree(files: list[RenderedFile]) -> dict[str, bytes]:
    """Relative path in the output directory → content, manifest included."""
    tree = {f"{f.machine}{f.path}": f.content for f in files}
    tree[MANIFEST] = manifest_json(files)
    return tree


def _existing_tree(out: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    if (out / MANIFEST).is_file():
        found[MANIFEST] = (out / MANIFEST).read_bytes()
    for top in ("server", "hosts"):
        base = out / top
        if not base.is_dir():
            continue
        for dirpath, _dirs, names in os.walk(base):
            for name in names:
                full = Path(dirpath) / name
                # a link or FIFO is never what a render wrote: it differs, and is not followed or read
                content = full.read_bytes() if full.is_file() and not full.is_symlink() else b"\0not a file"
                found[full.relative_to(out).as_posix()] = content
    return found


@dataclass(frozen=True)
class TreeDiff:
    """How an output directory differs from a fresh render."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    # both trees as compared (relative path → content), for the diff's lines: the tree is read once
    want: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    have: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def clean(self) -> bool:
        return not (self.added or self.removed or self.changed)


def tree_diff_text(files: list[RenderedFile], diff: TreeDiff, context: int = 3) -> str:
    """A unified diff from the review tree in `out` to a fresh render. Lines are shown only of a file the fresh
    render writes, that neither it nor the tree's manifest marks secret and that holds no private key: a
    removed file, or anything else put in the tree, is named, never shown."""
    want, have = diff.want, diff.have
    hidden = {f"{f.machine}{f.path}" for f in files if f.secret} | _secret_in_manifest(have.get(MANIFEST))
    chunks: list[str] = []
    for path in sorted({*diff.added, *diff.removed, *diff.changed}):
        old, new = have.get(path), want.get(path)
        names = (f"a/{path}" if old is not None else "/dev/null", f"b/{path}" if new is not None else "/dev/null")
        if path in hidden or new is None or any(b"PRIVATE KEY" in c for c in (old or b"", new)):
            chunks.append(f"--- {names[0]}\n+++ {names[1]}\n(lines not shown: removed, secret, or a key)\n")
            continue
        try:
            before, after = _lines(old.decode("utf-8") if old is not None else ""), _lines(new.decode("utf-8"))
        except UnicodeDecodeError:
            chunks.append(f"Binary files {names[0]} and {names[1]} differ\n")
            continue
        lines = difflib.unified_diff(before, after, *names, n=context)
        chunks.append(
            "".join(line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines)
        )
    return "".join(chunks)


def _lines(text: str) -> list[str]:
    """Lines split at `\n` alone (a form feed or U+2028 inside a line stays in it, to be shown escaped)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _secret_in_manifest(raw: bytes | None) -> set[str]:
    """The paths an earlier render's manifest marked secret (a renamed machine's key stays hidden)."""
    try:
        entries = json.loads(raw or b"{}").get("files", [])
        return {f"{e['machine']}{e['path']}" for e in entries if isinstance(e, dict) and e.get("secret")}
    except (ValueError, AttributeError, TypeError, KeyError):
        return set()


def check_tree(files: list[RenderedFile], out: Path) -> TreeDiff:
    """Compare `out` against a fresh render: added = would be written, removed = would be deleted."""
    if not out.is_dir():
        raise BadInputError(f"{out}: no such render directory")
    _check_render_dir(out)
    want = review_tree(files)
    have = _existing_tree(out)
    return TreeDiff(
        added=sorted(set(want) - set(have)),
        removed=sorted(set(have) - set(want)),
        changed=sorted(p for p in want.keys() & have.keys() if want[p] != have[p]),
        want=want,
        have=have,
    )


def _check_render_dir(out: Path) -> None:
    """An earlier render is replaced only when it looks like one: no link leads the writes elsewhere."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BadInputError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise BadInputError(f"{out}: not empty and not a logstack render (no {MANIFEST}); choose another -o")
    for name in (MANIFEST, "server", "hosts"):
        entry = out / name
        wanted_dir = name != MANIFEST
        if entry.is_symlink() or (entry.exists() and entry.is_dir() != wanted_dir):
            kind = "a directory" if wanted_dir else "a file"
            raise BadInputError(f"{entry}: not {kind} of a logstack render (a link or another kind); remove it")


def write_tree(files: list[RenderedFile], out: Path) -> int:
    """Write the review tree to `out`, replacing an earlier render; returns the number of files."""
    _check_render_dir(out)
    tree = review_tree(files)
    for top in ("server", "hosts"):
        if (out / top).is_dir():
            shutil.rmtree(out / top)
    out.mkdir(parents=True, exist_ok=True)
    # Create each directory once, parents first: mkdir(parents=True) per file dominated large renders.
    dirs: set[str] = set()
    for rel in tree:
        parts = rel.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:depth]))
    for rel_dir in sorted(dirs, key=lambda d: (d.count("/"), d)):
        os.mkdir(out / rel_dir)
    for rel, content in tree.items():
        (out / rel).write_bytes(content)
    return len(tree)
