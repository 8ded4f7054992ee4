"""docs/deploying.md's "What is rendered" table, made from the file table by rendering the bundled example.

`python3 -m tests.rendered_table` writes it; tests/test_docs.py checks that it is current.
"""

from __future__ import annotations

from pathlib import Path

from tests.generated_section import with_section

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "deploying.md"
BEGIN = "<!-- rendered: made by `python3 -m tests.rendered_table` from the file table; do not edit -->"
END = "<!-- rendered end -->"
# What each file is for, by (machine role, path); a file the table renders without a line here fails the test.
PURPOSE: dict[tuple[str, str], str] = {
    ("server", "/etc/greptime/standalone.toml"): (
        "GreptimeDB: listeners on 127.0.0.1, unused protocols and telemetry off, only options v1.1.4 reads"
    ),
    ("server", "/etc/greptime/users.conf"): "`admin:rw` (DDL, backups), `vector:wo` (ingest), `analyst:ro` (analysis)",
    ("server", "/etc/logstack/admin.password"): "admin's password for `logstack backup`",
    ("server", "/etc/logstack/alert-secrets.json"): "the alert destinations' secrets (a systemd credential)",
    ("server", "/etc/logstack/alerts.json"): "the alert destinations",
    ("server", "/etc/logstack/analyst.password"): "the read-only user's password for analysis and sealing",
    ("server", "/etc/logstack/ingest.password"): "the write-only ingest user's password (the seal writes its head)",
    ("server", "/etc/logstack/schema.sql"): "database with TTL; logs, seal-heads (and backups) tables in append mode",
    ("server", "/etc/logstack/seal.key"): "the key the seal chain is signed with",
    ("server", "/etc/systemd/system/greptime.service"): "hardened unit (own user, NoNewPrivileges, …)",
    ("server", "/etc/systemd/system/logstack-analyze.service"): "`logstack analyze --since-last-run`, alerts",
    ("server", "/etc/systemd/system/logstack-analyze.timer"): "its schedule",
    ("server", "/etc/systemd/system/logstack-backup.service"): "`logstack backup` (COPY DATABASE, retention)",
    ("server", "/etc/systemd/system/logstack-backup.timer"): "its schedule",
    ("server", "/etc/systemd/system/logstack-seal.service"): "`logstack seal` after each analysis run",
    ("server", "/etc/systemd/system/vector.service.d/10-logstack.conf"): "no health-check gate; "
    "`RestartPreventExitStatus=78` (a configuration error stops the restart loop)",
    ("server", "/etc/vector/tls/ca.pem"): "the CA bundle senders' certificates are verified with",
    ("server", "/etc/vector/tls/server.key"): "the receiver's key (placeholder in review)",
    ("server", "/etc/vector/tls/server.pem"): "the receiver's certificate",
    ("server", "/etc/vector/vector.yaml"): "`vector` source with mutual TLS; `greptimedb_logs` sink, acknowledgements, "
    "disk buffer; metrics on 127.0.0.1:9598",
    ("hosts", "/etc/systemd/system/vector.service.d/10-logstack.conf"): "as on the server",
    ("hosts", "/etc/vector/secrets/signing_key"): "the host's own signing key (placeholder in review)",
    ("hosts", "/etc/vector/tls/ca.pem"): "the CA bundle the server's name is verified with",
    ("hosts", "/etc/vector/tls/client.key"): "the host's own client key (placeholder in review)",
    ("hosts", "/etc/vector/tls/client.pem"): "the host's own client certificate",
    ("hosts", "/etc/vector/vector.yaml"): "journald (`emit_cursor`), the filter, signing, identity fields, `vector` "
    "sink with mutual TLS and name verification, disk buffer",
}


def rendered_table() -> str:
    """One row per role and file: owner and mode, what it restarts, what it is for."""
    from logstack.render.site_files import render_site
    from logstack.site.inventory import load_inventory

    files = render_site(load_inventory(ROOT / "inventory.example.yaml"))
    rows = {(f.machine.split("/")[0], f.path): f for f in files}
    out = ["| on | file | owner, mode | restarts | what |", "|---|---|---|---|---|"]
    for (role, path), f in sorted(rows.items()):
        mode = f"{f.owner}:{f.group} {f.mode:04o}" + (" (secret)" if f.secret else "")
        restarts = f"`{f.service}`" if f.service else ""
        out.append(f"| {role} | `{path}` | {mode} | {restarts} | {PURPOSE[(role, path)]} |")
    return "\n".join(out)


def page_with(body: str, page: str) -> str:
    """The page's text with the table replaced."""
    return with_section(page, BEGIN, END, body)


if __name__ == "__main__":
    PAGE.write_text(page_with(rendered_table(), PAGE.read_text()))
