"""The receiving Vector's own metrics: where its rendered config serves them, and what they say of loss.

internal_metrics (namespace `vector`, vector v0.57.0 src/sources/internal_metrics.rs:84) → prometheus_exporter
at the rendered address. Buffer gauges carry `buffer_id` and `stage` (lib/vector-buffers/src/internal_events.rs)
and, reported inside the sink's span (lib/vector-buffers/src/buffer_usage_data.rs:397, src/topology/builder.rs
650-699), `component_id`, `component_kind`, `component_type`, `buffer_type` (lib/vector-core/src/metrics/
label_filter.rs:19-22).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import yaml

from logstack.base.errors import RuntimeFailure
from logstack.connection.base import Connection
from logstack.render.rendered import SERVER_MACHINE
from logstack.render.site_files import render_site
from logstack.site.inventory import Inventory
from logstack.store.greptime import http_over_ssh

# Vector's internal metrics (namespace `vector`, vector v0.57.0 src/sources/internal_metrics.rs) served by the
# receiver's prometheus_exporter: a request the sink gave up on counts in component_errors_total and its
# events in component_discarded_events_total (lib/vector-common/src/internal_event/service.rs, CallError);
# the disk buffer reports buffer_size_bytes against buffer_max_size_bytes (lib/vector-buffers).
MAX_METRICS = 4 * 1024 * 1024
SINK = "greptimedb"
_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+([-+0-9.eEna]+)(?:\s+\d+)?$")
_LABEL_RE = re.compile(r'(?<!\w)(\w++)="((?:[^"\\]|\\.)*+)"')


def sink_metrics(text: str, sink: str = SINK) -> tuple[int, int, float | None]:
    """(events discarded, errors, buffer fill %) of one sink, from Prometheus exposition text."""
    totals: dict[str, float] = {}
    for line in text[:MAX_METRICS].splitlines():
        if len(line) > 4096:  # no series of Vector's is this long
            continue
        match = _SAMPLE_RE.match(line.strip())
        if match is None:
            continue
        name, labels, value = match.groups()
        found = dict(_LABEL_RE.findall(labels or ""))
        if sink not in (found.get("component_id"), found.get("buffer_id")):
            continue
        if name == "vector_component_discarded_events_total" and found.get("intentional") == "true":
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number) and 0 <= number < 1e15:  # counters and sizes; anything else is not Vector's
            totals[name] = totals.get(name, 0.0) + number
    size = totals.get("vector_buffer_size_bytes", totals.get("vector_buffer_byte_size"))
    limit = totals.get("vector_buffer_max_size_bytes", totals.get("vector_buffer_max_byte_size"))
    fill = round(100 * size / limit, 1) if size is not None and limit else None
    discarded = int(totals.get("vector_component_discarded_events_total", 0))
    return discarded, int(totals.get("vector_component_errors_total", 0)), fill


@dataclass
class ReceiverMetrics:
    """What one receiving Vector's metrics say, or why they could not be read."""

    discarded: int = 0
    errors: int = 0
    buffer_percent: float | None = None
    problem: str | None = None


def exporter_addresses(inventory: Inventory) -> dict[str, tuple[str, int] | None]:
    """Where each receiving machine's rendered Vector config serves its metrics (None: it renders no exporter).

    Read from the files render gives every receiving machine, so that what status asks for is what was
    deployed (a config without the exporter is a finding, not a silent default)."""
    found: dict[str, tuple[str, int] | None] = {}
    for rendered in render_site(inventory, hosts=[]):
        if rendered.path != "/etc/vector/vector.yaml":
            continue
        config = yaml.safe_load(rendered.content) or {}
        address = next(
            (
                str(sink.get("address"))
                for sink in (config.get("sinks") or {}).values()
                if isinstance(sink, dict) and sink.get("type") == "prometheus_exporter"
            ),
            None,
        )
        name = "server" if rendered.machine == SERVER_MACHINE else rendered.machine.removeprefix("receivers/")
        found[name] = _host_port(address) if address else None
    return found


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def read_metrics(conn: Connection, address: tuple[str, int] | None) -> ReceiverMetrics:
    """The receiving machine's Vector metrics, read through its SSH connection at the rendered address."""
    if address is None:
        return ReceiverMetrics(problem="its rendered Vector config serves no metrics (no prometheus_exporter)")
    where = f"{address[0]}:{address[1]}"
    try:
        status, body = http_over_ssh(conn, address, "GET", "/metrics")
    except RuntimeFailure as exc:
        return ReceiverMetrics(problem=f"Vector's metrics at {where} unreadable: {exc}")
    if status != 200:
        return ReceiverMetrics(problem=f"Vector's metrics at {where}: HTTP {status}")
    discarded, errors, fill = sink_metrics(body.decode(errors="replace"))
    return ReceiverMetrics(discarded, errors, fill)
