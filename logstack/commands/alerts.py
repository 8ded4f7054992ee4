"""`logstack alerts`: send a test message to every destination; show what each has yet to accept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from logstack.alerts.delivery import backlog, load_config, send_test
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.base.paths import DATA_ROOT
from logstack.commands.options import DEFAULT_INVENTORY, InventoryOpt, TextOrJson, inventory
from logstack.site.alerts import AlertConfig, check_secrets

app = typer.Typer(
    help="Alert destinations: send a test, show what waits to be delivered.",
    pretty_exceptions_enable=False,
    add_completion=False,
    no_args_is_help=True,
)


@app.command("test")
def test(
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
    alerts: Annotated[Path | None, typer.Option("--alerts", help="alerts.json (on the server).")] = None,
    alert_secrets: Annotated[Path | None, typer.Option("--alert-secrets", help="Their secrets (JSON).")] = None,
) -> None:
    """Send one test message to each destination (from the inventory, or the server's alerts.json)."""
    config = _config(inventory_path, alerts, alert_secrets)
    if not config.destinations:
        raise BadInputError("no alert destinations are configured (server.alerts)")
    answers = send_test(config)
    for name, error in answers.items():
        typer.echo(f"{name}: {'accepted' if error is None else 'FAILED: ' + error}")
    failed = [name for name, error in answers.items() if error is not None]
    if failed:
        raise RuntimeFailure(f"alerts test: {len(failed)} of {len(answers)} destinations failed: {', '.join(failed)}")


@app.command("backlog")
def show_backlog(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The analysis state directory.")] = DATA_ROOT,
    output: TextOrJson = "text",
    # what `status` runs on the server (servers whose logstack is older know only this spelling)
    as_json: Annotated[bool, typer.Option("--json", hidden=True, help="Same as --format json.")] = False,
) -> None:
    """What each destination has yet to accept, per analysis state."""
    found = backlog(data_dir)
    if output == "json" or as_json:
        typer.echo(json.dumps(found, sort_keys=True))
        return
    rows = [(state, row) for state, rows in found.items() for row in rows]
    if not rows:
        typer.echo("no alert queues")
    for state, row in rows:
        detail = f", last error: {row['last_error']}" if row["last_error"] else ""
        typer.echo(f"{row['dest']}: {row['queued']} queued, {row['overflow']} not queued (full){detail} [{state}]")


def _config(inventory_path: Path, alerts: Path | None, secrets: Path | None) -> AlertConfig:
    if alerts is not None:
        return load_config(alerts, secrets)
    from logstack.site.secrets import load_secrets, secrets_path

    inv = inventory(inventory_path)
    site_secrets = load_secrets(secrets_path(inv.site_dir))
    config = AlertConfig(inv.spec.site, tuple(inv.server.alerts), site_secrets.alerts)
    check_secrets(config, str(secrets_path(inv.site_dir)))
    return config
