"""Checks rendered configs against the upstream option references vendored in tests/reference/ (their
sources: tests/reference/README.md)."""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def reference_dir() -> Path:
    override = os.environ.get("LOGSTACK_REFERENCE_DIR")
    path = Path(override) if override else ROOT / "tests" / "reference"
    if not (path / "vector-options.json").is_file():
        raise AssertionError(f"upstream references not found at {path} (set LOGSTACK_REFERENCE_DIR)")
    return path


@cache
def vector_reference() -> dict[str, Any]:
    return json.loads((reference_dir() / "vector-options.json").read_text())


@cache
def greptime_reference() -> dict[str, Any]:
    return json.loads((reference_dir() / "greptimedb-standalone.json").read_text())


_PY_TYPES = {
    "string": (str,),
    "bool": (bool,),
    "uint": (int,),
    "int": (int,),
    "float": (int, float),
    "array": (list,),
    "object": (dict,),
}


def _check_value(value: Any, schema: dict[str, Any], path: str, errors: list[str]) -> None:
    kind = schema.get("type")
    if schema.get("deprecated"):
        errors.append(f"{path}: deprecated option ({schema.get('deprecated_message', 'deprecated')})")
    if kind == "condition":
        if not isinstance(value, str | dict):
            errors.append(f"{path}: condition must be a VRL string or an object")
        return
    expected = _PY_TYPES.get(kind)
    if expected and (not isinstance(value, expected) or (kind != "bool" and isinstance(value, bool))):
        errors.append(f"{path}: expected {kind}, got {type(value).__name__}")
        return
    if kind == "uint" and value < 0:
        errors.append(f"{path}: expected a non-negative integer")
    enum = schema.get("enum")
    if enum is not None and value not in (list(enum) if isinstance(enum, dict) else enum):
        errors.append(f"{path}: {value!r} not one of {sorted(enum)}")
    if isinstance(value, dict):
        _check_object(value, schema, path, errors)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check_value(item, schema["items"], f"{path}[{i}]", errors)


_RELEVANT_RE = re.compile(r'(\w+) = "([^"]*)"')


def _relevant(option: dict[str, Any], value: dict[str, Any]) -> bool:
    """An option the reference marks `relevant_when: type = "exec"` (or several, joined by `or`) applies
    only to objects of that type: it is neither required nor allowed elsewhere."""
    when = option.get("relevant_when")
    if not when:
        return True
    return any(value.get(field) == wanted for field, wanted in _RELEVANT_RE.findall(when))


def _check_object(value: dict[str, Any], schema: dict[str, Any], path: str, errors: list[str]) -> None:
    options = schema.get("options")
    extra = schema.get("additional_properties")
    if options is not None:
        for key, sub in value.items():
            if key in options and not _relevant(options[key], value):
                errors.append(f"{path}.{key}: not an option of this type ({options[key]['relevant_when']})")
            elif key in options:
                _check_value(sub, options[key], f"{path}.{key}", errors)
            elif extra is not None:
                _check_value(sub, extra, f"{path}.{key}", errors)
            else:
                errors.append(f"{path}.{key}: unknown option")
        for key, opt in options.items():
            if (
                opt.get("required")
                and key not in value
                and _relevant(opt, value)
                and not _required_exception(path, key, value)
            ):
                errors.append(f"{path}.{key}: required option missing")
    elif extra is not None:
        for key, sub in value.items():
            _check_value(sub, extra, f"{path}.{key}", errors)


def _required_exception(path: str, key: str, value: dict[str, Any]) -> bool:
    # The generated schema marks buffer.max_size required for every type; Vector needs it only for disk.
    return path.endswith(".buffer") and key == "max_size" and value.get("type", "memory") == "memory"


def check_vector_config(config: dict[str, Any]) -> list[str]:
    """Every problem of a parsed vector.yaml against Vector 0.57's option trees."""
    ref = vector_reference()
    errors: list[str] = []
    kinds = {"sources", "transforms", "sinks"}
    for key, value in config.items():
        if key in kinds:
            continue
        if key not in ref["global"]:
            errors.append(f"{key}: unknown global option")
        else:
            _check_value(value, ref["global"][key], key, errors)
    names = {name for kind in kinds for name in config.get(kind, {})}
    for kind in kinds:
        for name, component in (config.get(kind) or {}).items():
            path = f"{kind}.{name}"
            ctype = component.get("type")
            spec = ref["components"][kind].get(ctype)
            if spec is None:
                errors.append(f"{path}: unknown {kind[:-1]} type {ctype!r}")
                continue
            options = dict(ref["common_options_by_kind"][kind])
            options.update(spec["options"])
            body = {k: v for k, v in component.items() if k != "type"}
            _check_object(body, {"options": options}, path, errors)
            for upstream in component.get("inputs", []):
                if upstream not in names:
                    errors.append(f"{path}.inputs: {upstream!r} is no component")
    return errors


def flatten_toml(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_toml(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
