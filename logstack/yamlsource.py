"""YAML loading that remembers where every value came from, so errors can name file:line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from logstack.errors import InventoryError

try:  # libyaml's composer is several times faster on large inventories
    _Composer: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Composer = yaml.SafeLoader

Path_ = tuple[str | int, ...]


@dataclass
class LocatedDocument:
    """Plain Python data plus the 1-based line of every key path in it."""

    path: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, loc: Path_) -> int:
        """Line of the deepest known prefix of `loc` (1 when nothing is known)."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return 1

    def where(self, loc: Path_) -> str:
        """`file:line: yaml.path` for messages."""
        return f"{self.path}:{self.line_of(loc)}: {format_loc(loc)}"


def format_loc(loc: Path_) -> str:
    """Render a key path the way a user reads YAML: hosts[3].ssh.port."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def load_located_yaml(path: Path) -> LocatedDocument:
    """Parse a YAML file into data and a line map; syntax errors become InventoryError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: cannot read: {exc}") from None
    try:
        root = yaml.compose(text, Loader=_Composer)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise InventoryError(f"{path}:{line}: YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: YAML error: {exc}") from None
    doc = LocatedDocument(path=path, data=None)
    if root is None:
        doc.data = {}
        return doc
    constructor = yaml.SafeLoader("")
    doc.data = _to_python(root, (), doc, constructor)
    return doc


def _to_python(node: yaml.Node, loc: Path_, doc: LocatedDocument, constructor: yaml.SafeLoader) -> Any:
    doc.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise InventoryError(
                    f"{doc.path}:{key_node.start_mark.line + 1}: {format_loc(loc)}: "
                    "YAML merge keys (<<) are not supported; use defaults/groups instead"
                )
            key = _scalar(key_node, constructor, doc)
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise InventoryError(
                    f"{doc.path}:{key_node.start_mark.line + 1}: {format_loc(loc)}: keys must be strings"
                )
            key = str(key)
            child = (*loc, key)
            if key in result:
                raise InventoryError(f"{doc.path}:{key_node.start_mark.line + 1}: {format_loc(child)}: duplicate key")
            doc.lines[child] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, child, doc, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, i), doc, constructor) for i, item in enumerate(node.value)]
    return _scalar(node, constructor, doc)


def _scalar(node: yaml.Node, constructor: yaml.SafeLoader, doc: LocatedDocument) -> Any:
    where = f"{doc.path}:{node.start_mark.line + 1}"
    if not isinstance(node, yaml.ScalarNode):
        raise InventoryError(f"{where}: complex keys are not supported")
    try:
        return constructor.construct_object(node)
    except yaml.constructor.ConstructorError as exc:
        raise InventoryError(f"{where}: {exc.problem}") from None
