"""A one-server inventory written before receivers and external stores existed renders byte for byte as it
did then: tests/data/one-server/manifest.json is that render's manifest (every file's sha256, owner, mode),
made by logstack at commit f2a5be4 from the inventory beside it, and made again when changes were wanted on
the server (its analysis and seal units' run limits, its Vector's loopback metrics exporter; later the seal's
record of the chain's end in the store: schema.sql, the seal unit, ingest.password; then the analysis unit
reading the rows as Arrow over GreptimeDB's HTTP port, `--db-http`): every other file, the senders' included,
is as it was at f2a5be4."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import invoke

DATA = Path(__file__).parent / "data" / "one-server"


def test_a_one_server_inventory_renders_byte_identical(tmp_path, runner):
    out = tmp_path / "out"
    result = invoke(runner, "render", "-i", DATA / "inventory.yaml", "-o", out)
    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").read_text() == (DATA / "manifest.json").read_text()
