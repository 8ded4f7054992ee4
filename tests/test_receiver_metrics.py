"""Receiver metrics exist where status looks for them: every receiving machine renders Vector's own metrics
into a loopback exporter, status takes the address from that rendered file, and a config without it is a
finding, not a default."""

from __future__ import annotations

import yaml

from logstack.evidence.receiver_metrics import exporter_addresses, read_metrics
from logstack.site.inventory import load_inventory
from tests.conftest import EXAMPLE
from tests.greptime_stub import rendered_exporter


def _scaled(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["server"]["store"] = {
        "type": "external",
        "http_endpoint": "https://store.example.com:4000",
        "mysql_host": "store.example.com",
        "mysql_port": 4002,
    }
    doc["server"]["receivers"] = [
        {"name": "recv2", "fqdn": "recv2.example.com", "address": "192.0.2.12"},
        {"name": "recv3", "fqdn": "recv3.example.com", "address": "192.0.2.13"},
    ]
    doc["server"]["backup"] = None
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_every_receiving_machine_serves_its_metrics_on_loopback(tmp_path):
    for inventory, machines in ((EXAMPLE, ["server"]), (_scaled(tmp_path), ["server", "recv2", "recv3"])):
        found = exporter_addresses(load_inventory(inventory))
        assert found == dict.fromkeys(machines, ("127.0.0.1", 9598))
        for machine in machines:
            rendered = "server" if machine == "server" else f"receivers/{machine}"
            assert rendered_exporter(inventory, rendered) == ("127.0.0.1", 9598)


def test_a_receiver_config_without_an_exporter_is_a_finding(tmp_path, monkeypatch):
    from logstack.evidence import receiver_metrics

    real = receiver_metrics.render_site

    def without_exporter(*args, **kwargs):
        from dataclasses import replace

        out = []
        for f in real(*args, **kwargs):
            if f.path == "/etc/vector/vector.yaml":
                config = yaml.safe_load(f.content)
                config["sinks"].pop("metrics")
                f = replace(f, content=yaml.safe_dump(config).encode())
            out.append(f)
        return out

    monkeypatch.setattr(receiver_metrics, "render_site", without_exporter)
    found = exporter_addresses(load_inventory(EXAMPLE))
    assert found == {"server": None}
    metrics = read_metrics(None, found["server"])  # no connection is needed to know there is nothing to read
    assert metrics.problem and "no prometheus_exporter" in metrics.problem
