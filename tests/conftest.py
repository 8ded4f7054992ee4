from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logstack.cli import app
from logstack.pki import PKI
from logstack.site.inventory import Inventory

# Fixtures shared by several test modules
pytest_plugins = ["tests.greptime_stub", "tests.processes", "tests.engines", "pytester"]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "inventory.example.yaml"
# init-server uploads logstack's dependencies from here (tests/setup.sh fills it): tests never ask an index
WHEELS = ROOT / "tests" / ".wheels"
os.environ["LOGSTACK_WHEELS"] = str(WHEELS)
# a defect shows as its traceback in the tests, not as the one-line internal error users get
os.environ["LOGSTACK_DEBUG"] = "1"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site directory holding a copy of the example inventory."""
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    shutil.copy(EXAMPLE, site_dir / "inventory.yaml")
    return site_dir / "inventory.yaml"


def invoke(runner: CliRunner, *args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def vector_port():
    """Vector's port on the receivers: the stand-in Vector does not listen, so the test does (one network)."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture(scope="session")
def mysql_4002(mariadb):
    """GreptimeDB's MySQL port on the server's loopback, served by the MariaDB stand-in (whose rows the HTTP
    stand-in answers `format=arrow` queries with)."""
    from tests.greptime_stub import FakeGreptime
    from tests.relay import relay

    FakeGreptime.mysql_port = mariadb.port
    with relay(4002, mariadb.port):
        yield mariadb


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    from tests.mariadb import start_mariadb

    server = start_mariadb(tmp_path_factory.mktemp("mariadb"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ssh_client_key(tmp_path_factory):
    from tests.sshd import make_client_key

    return make_client_key(tmp_path_factory.mktemp("sshkey"))


def mint_site(inv: Inventory) -> PKI:
    """The site's CA, its server certificate and every host's client certificate."""
    pki = PKI.for_inventory(inv)
    pki.init_ca()
    pki.issue_server(inv)
    for host in inv.hosts:
        pki.issue_client(host)
    return pki
