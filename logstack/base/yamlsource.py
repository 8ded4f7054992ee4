"""YAML loading that remembers where every value came from, so errors can name file:line."""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from logstack.base.errors import InventoryError

try:  # libyaml's composer is several times faster on large inventories
    _Composer: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Composer = yaml.SafeLoader

Path_ = tuple[str | int, ...]

# Bounds that keep a hostile file from costing more than a real one: nested aliases ("billion laughs")
# expand to at most MAX_NODES values, nesting stops at MAX_DEPTH, and integers are at most MAX_INT_DIGITS
# digits (Python refuses to convert longer ones, and no setting needs one).
MAX_BYTES = 16 * 1024 * 1024
MAX_NODES = 200_000
MAX_EXPANDED_CHARS = 4 * 1024 * 1024  # text of all scalars once aliases are expanded
MAX_DEPTH = 64
MAX_INT_DIGITS = 30
_INT_TAG = "tag:yaml.org,2002:int"
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"})


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


def load_located_yaml(path: Path, keep_text: Callable[[Path_], bool] | None = None) -> LocatedDocument:
    """Parse a YAML file into data and a line map; syntax errors become InventoryError.

    Plain scalars at locations where `keep_text` is true stay the text as written (YAML 1.1 would make
    `0755` the number 493 and `12:30:00` the number 45000); null stays None.
    """
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
            raise InventoryError(f"{path}: not a regular file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InventoryError(f"{path}: file not found") from None
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise InventoryError(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MiB; not an inventory")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    _check_depth(path, text)
    try:
        root = yaml.compose(text, Loader=_Composer)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = str(exc.problem or exc)
        rows = text.splitlines()
        if mark and mark.line < len(rows) and "\t" in rows[mark.line][: mark.column + 1]:
            problem = "a tab character (YAML indents with spaces only)"
        raise InventoryError(f"{path}:{line}: YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as exc:  # a control character or other byte YAML does not allow
        char = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
        raise InventoryError(f"{path}: not YAML text: character {char!r} at position {exc.position}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: YAML error: {type(exc).__name__}") from None
    except RecursionError:
        raise InventoryError(f"{path}: nested more than YAML can read") from None
    doc = LocatedDocument(path=path, data=None)
    if root is None:
        doc.data = {}
        return doc
    builder = _Builder(doc, keep_text or (lambda loc: False))
    doc.data = builder.build(root, ())
    return doc


def _check_depth(path: Path, text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before composing: libyaml's composer recurses in C, and a
    deep enough file overflows the stack (a crash, not an exception). Its event parser does not recurse."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Composer):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else 1
                    raise InventoryError(f"{path}:{line}: nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        if "nesting depth" in str(exc):  # libyaml >= 0.2.5 stops deep nesting itself (PyYAML 6.0.4's wheels)
            raise InventoryError(f"{path}:1: nested deeper than {MAX_DEPTH} levels") from None
        return  # reported, with its line, by the composer


class _Builder:
    """Nodes to Python data within the bounds above; a recursive alias is an error, not a hang."""

    def __init__(self, doc: LocatedDocument, keep_text: Callable[[Path_], bool]) -> None:
        self.doc = doc
        self.keep_text = keep_text
        self.constructor = yaml.SafeLoader("")
        self.nodes = 0
        self.chars = 0
        self.active: set[int] = set()  # nodes on the current path: seeing one again is a cycle

    def fail(self, node: yaml.Node, loc: Path_, message: str) -> InventoryError:
        return InventoryError(f"{self.doc.path}:{node.start_mark.line + 1}: {format_loc(loc)}: {message}")

    def build(self, node: yaml.Node, loc: Path_) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(node, loc, f"more than {MAX_NODES} values once aliases are expanded")
        if len(loc) > MAX_DEPTH:
            raise self.fail(node, loc, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.ScalarNode):
            self.doc.lines.setdefault(loc, node.start_mark.line + 1)
            return self.scalar(node, loc)
        if node.tag not in _COLLECTION_TAGS:
            raise self.fail(node, loc, f"unsupported YAML tag {node.tag[:60]!r}")
        if id(node) in self.active:
            raise self.fail(node, loc, "a recursive alias (a value that contains itself)")
        self.active.add(id(node))
        try:
            return _to_python(node, loc, self)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: yaml.ScalarNode, loc: Path_) -> Any:
        self.chars += len(node.value)
        if self.chars > MAX_EXPANDED_CHARS:
            raise self.fail(
                node, loc, f"more than {MAX_EXPANDED_CHARS // (1024 * 1024)} MiB of text once aliases are expanded"
            )
        if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
            raise self.fail(node, loc, f"a number of more than {MAX_INT_DIGITS} digits")
        if not node.style and node.tag not in (_STR_TAG, _NULL_TAG) and self.keep_text(loc):
            return node.value
        return _scalar(node, self.constructor, self.doc)


def _to_python(node: yaml.Node, loc: Path_, builder: _Builder) -> Any:
    doc = builder.doc
    constructor = builder.constructor
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
            result[key] = builder.build(value_node, child)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [builder.build(item, (*loc, i)) for i, item in enumerate(node.value)]
    return _scalar(node, constructor, doc)


def _scalar(node: yaml.Node, constructor: yaml.SafeLoader, doc: LocatedDocument) -> Any:
    where = f"{doc.path}:{node.start_mark.line + 1}"
    if not isinstance(node, yaml.ScalarNode):
        raise InventoryError(f"{where}: complex keys are not supported")
    if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
        raise InventoryError(f"{where}: a number of more than {MAX_INT_DIGITS} digits")
    try:
        return constructor.construct_object(node)
    except yaml.constructor.ConstructorError as exc:
        raise InventoryError(f"{where}: {exc.problem}") from None
    except (ValueError, OverflowError) as exc:  # e.g. a date that does not exist
        raise InventoryError(f"{where}: {exc}") from None
