"""A site in its scaled form: the server and two more receivers, an external store behind TLS."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import EXAMPLE


def scaled_inventory(site: Path, ca_pem: bytes, extra: dict | None = None) -> Path:
    """The example inventory with receivers logs2 and logs3 and an external store whose CA is `ca_pem`."""
    site.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["server"].pop("backup")
    spec["server"]["receivers"] = [
        {"name": "logs2", "fqdn": "logs2.example.com", "address": "192.0.2.11", "ip_addresses": ["192.0.2.11"]},
        {"name": "logs3", "fqdn": "logs3.example.com", "dns_names": ["logs3-alt.example.com"]},
    ]
    spec["server"]["store"] = {
        "type": "external",
        "http_endpoint": "https://greptime.example.com:4000",
        "mysql_host": "greptime.example.com",
        "mysql_port": 4002,
        "ca_file": "store-ca.pem",
    }
    for key, value in (extra or {}).items():
        node = spec
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    (site / "store-ca.pem").write_bytes(ca_pem)
    path = site / "inventory.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
