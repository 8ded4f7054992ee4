"""Where the store's MySQL endpoint is: options shared by every command that reads the store (and light:
`analyze` loads no inventory code for them)."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from logstack.site.inventory import Inventory
    from logstack.store.greptime import DatabaseConfig

DbHost = Annotated[
    str | None,
    typer.Option("--db-host", help="GreptimeDB's MySQL endpoint (default: the inventory's, else 127.0.0.1)."),
]
DbPort = Annotated[int | None, typer.Option("--db-port", min=1, max=65535, help="Default: the inventory's, else 4002.")]
DbTls = Annotated[bool, typer.Option("--db-tls", help="Verified TLS to the MySQL endpoint (an external store).")]
DbTlsCa = Annotated[Path | None, typer.Option("--db-tls-ca", help="CA to verify it with (implies --db-tls).")]
DbUser = Annotated[str | None, typer.Option("--db-user", help="Default: analyst (read-only).")]
DbName = Annotated[str | None, typer.Option("--db-name", help="Default: the inventory's, else vector.")]
TableOpt = Annotated[str | None, typer.Option("--table", help="Default: the inventory's, else logs.")]
DbHttpOpt = Annotated[
    str | None,
    typer.Option(
        "--db-http",
        help="GreptimeDB's HTTP endpoint (http://127.0.0.1:4000, https:// elsewhere): read the rows over it as "
        "Arrow, faster than over MySQL (the MySQL endpoint still answers the rest).",
    ),
]
PasswordFile = Annotated[
    Path | None, typer.Option("--db-password-file", help="File holding the database user's password.")
]


@dataclass(frozen=True)
class StoreOptions:
    """The store as a command's options name it; unset values come from the inventory, then defaults."""

    host: str | None = None
    port: int | None = None
    tls: bool = False
    tls_ca: Path | None = None
    user: str | None = None
    name: str | None = None
    table: str | None = None
    password_file: Path | None = None

    def config(self, inv: Inventory | None) -> DatabaseConfig:
        """Connection settings: these options, then the inventory, then the defaults."""
        from logstack.store.greptime import database_config

        return database_config(
            inv, self.host, self.port, self.user, self.name, self.table, self.password_file, self.tls, self.tls_ca
        )


def over_http(config: DatabaseConfig, endpoint: str | None) -> DatabaseConfig:
    """`config`, its rows read as Arrow over `endpoint` (`--db-http`) when one is given."""
    if endpoint is None:
        return config
    import dataclasses

    from logstack.store.arrow_http import http_endpoint

    return dataclasses.replace(config, http=http_endpoint(endpoint))


# Each option: its parameter name, annotation and default, in the order --help shows them.
_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("db_host", DbHost, None),
    ("db_port", DbPort, None),
    ("db_tls", DbTls, False),
    ("db_tls_ca", DbTlsCa, None),
    ("db_user", DbUser, None),
    ("db_name", DbName, None),
    ("table", TableOpt, None),
    ("db_password_file", PasswordFile, None),
)
F = TypeVar("F", bound=Callable[..., Any])


def store_options(command: F) -> F:
    """Give a command the store options; it receives them as one `store: StoreOptions` argument."""
    signature = inspect.signature(command)
    hints = typing_hints(command)
    hints.pop("store", None)
    params = [p for p in signature.parameters.values() if p.name != "store"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for name, a, d in _OPTIONS
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        values = [kwargs.pop(name, default) for name, _, default in _OPTIONS]
        return command(store=StoreOptions(*values), **kwargs)

    keyword = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints.get(p.name, p.annotation)) for p in params
    ]
    wrapper.__signature__ = signature.replace(parameters=[*keyword, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**hints, **{name: a for name, a, _ in _OPTIONS}}
    return wrapper  # type: ignore[return-value]


def typing_hints(command: Callable[..., Any]) -> dict[str, Any]:
    """A command's parameter annotations resolved (its module uses postponed annotations)."""
    return typing.get_type_hints(command, include_extras=True)


VerifyOpt = Annotated[
    bool | None,
    typer.Option(
        "--verify-signatures/--no-verify-signatures",
        help="Check each row's signature (default: whenever there is a key ring: -i or --signing-keys; a site's "
        "must be there). Off: every row is flagged not_verified.",
        show_default=False,
    ),
]


# One vocabulary of times for every --since/--until (logstack.base.clock.parse_time).
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Start (UTC): a date (2026-11-01), a time, or how long ago (7d, yesterday, -2h)."),
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="End (UTC): a date, a time, or how long ago (default: now).")
]
