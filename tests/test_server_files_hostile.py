"""What the server side reads that someone else may have written or edited: the alert destinations and their
secrets, a backup's manifest, secrets.yaml's alert and store sections, a store CA bundle, a store endpoint.
Whatever they hold: a result, or one of logstack's own one-line errors; never a parser's exception."""

from __future__ import annotations

import json

import hypothesis
import yaml
from hypothesis import strategies as st

from logstack.alerts.delivery import load_config
from logstack.base.ca_bundle import read_bundle
from logstack.base.errors import LogstackError
from logstack.base.validation import https_url
from logstack.site.secrets import load_secrets
from logstack.store.backup import read_manifest
from logstack.store.restore import table_statement

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=25,
)
_destination = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["chat", "mail", "x", "Bad Name", ""]),
        "type": st.sampled_from(["webhook", "email", "zabbix", "exec", "sms"]),
    },
    optional={
        "url": st.one_of(st.text(max_size=30), st.just("https://h.example.com/x")),
        "command": st.one_of(st.lists(st.text(max_size=10), max_size=3), st.just(["/bin/true"])),
        "host": st.text(max_size=20),
        "server": st.text(max_size=20),
        "sender": st.text(max_size=20),
        "recipients": st.lists(st.text(max_size=20), max_size=2),
        "queue_limit": st.integers(-5, 2_000_000),
        "min_severity": st.text(max_size=8),
        "event_types": st.lists(st.text(max_size=10), max_size=2),
    },
)


def _quietly(read, *args):
    try:
        return read(*args)
    except LogstackError as exc:
        assert "\n" not in str(exc).strip()
        return None


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    alerts=st.one_of(
        _json, st.fixed_dictionaries({"site": st.text(max_size=12), "destinations": st.lists(_destination, max_size=3)})
    ),
    secrets=st.one_of(
        _json,
        st.dictionaries(
            st.sampled_from(["chat", "mail", "x"]),
            st.dictionaries(st.text(max_size=8), st.text(max_size=40), max_size=3),
            max_size=3,
        ),
    ),
)
def test_alert_files(tmp_path_factory, alerts, secrets):
    where = tmp_path_factory.mktemp("alerts")
    (where / "alerts.json").write_text(json.dumps(alerts))
    (where / "secrets.json").write_text(json.dumps(secrets))
    _quietly(load_config, where / "alerts.json", where / "secrets.json")


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    manifest=st.one_of(
        _json,
        st.fixed_dictionaries(
            {
                "version": st.sampled_from([1, 2, "1"]),
                "database": st.one_of(st.text(max_size=8), st.integers()),
                "rows": st.one_of(st.integers(), st.text(max_size=3)),
                "tables": st.dictionaries(
                    st.text(max_size=10), st.one_of(st.text(max_size=60), st.integers()), max_size=3
                ),
            }
        ),
    )
)
def test_backup_manifests(manifest):
    found = _quietly(read_manifest, json.dumps(manifest).encode(), "m")
    if found is not None:
        for table, statement in found["tables"].items():
            _quietly(table_statement, "vector", table, statement, "m")


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(alerts=_json, store=_json)
def test_secrets_alert_and_store_sections(tmp_path_factory, alerts, store):
    where = tmp_path_factory.mktemp("secrets")
    passwords = {u: "p" * 20 for u in ("admin", "vector", "analyst")}
    path = where / "secrets.yaml"
    path.write_text(yaml.safe_dump({"greptimedb": passwords, "alerts": alerts, "store": store}))
    path.chmod(0o600)
    _quietly(load_secrets, path)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    data=st.one_of(
        st.binary(max_size=400), st.text(max_size=400).map(lambda t: ("-----BEGIN CERTIFICATE-----\n" + t).encode())
    )
)
def test_ca_bundles(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(data)
    _quietly(read_bundle, path, "ca_file")


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(url=st.one_of(st.text(max_size=40), st.text(max_size=30).map(lambda t: "https://" + t)))
def test_store_and_webhook_urls(url):
    try:
        https_url(url)
    except ValueError as exc:
        assert "\n" not in str(exc)
