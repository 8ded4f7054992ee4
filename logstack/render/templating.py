"""The Jinja2 environment every template renders in: strict, with filters that quote any value safely."""

from __future__ import annotations

import ipaddress
import json
from functools import cache

import jinja2

from logstack.base.package_data import templates_dir


def _quoted(value: object) -> str:
    # JSON strings are valid YAML double-quoted scalars and TOML basic strings: safe for any content.
    return json.dumps(str(value), ensure_ascii=False)


def _bracket_ip(value: str) -> str:
    try:
        return f"[{value}]" if ipaddress.ip_address(value).version == 6 else value
    except ValueError:
        return value


@cache
def _environment(root: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["yaml_str"] = _quoted
    env.filters["toml_str"] = _quoted
    env.filters["bracket_ip"] = _bracket_ip
    return env


def template(name: str) -> jinja2.Template:
    """The named template, compiled once."""
    return _environment(str(templates_dir())).get_template(name)


def placeholder(what: str) -> str:
    return f"<secret:{what}>"
