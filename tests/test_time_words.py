"""One vocabulary of times and durations for every option and the inventory (logstack.base.clock)."""

from __future__ import annotations

import datetime as dt
import json

import hypothesis
import pytest
from hypothesis import strategies as st

from logstack.base.clock import DAY, HOUR, SECOND, UNIT_SECONDS, parse_duration, parse_time, to_micros
from logstack.base.errors import BadInputError
from tests.conftest import ROOT, invoke

NOW = to_micros(dt.datetime(2026, 12, 6, 15, 30, tzinfo=dt.UTC))
SAMPLE = ROOT / "examples" / "journal-sample.json"


@hypothesis.given(
    parts=st.lists(
        st.tuples(st.integers(0, 300), st.sampled_from([u for u, s in UNIT_SECONDS.items() if s >= 1])),
        min_size=1,
        max_size=3,
    ),
    spaced=st.booleans(),
)
def test_durations_are_read_as_the_ttl_reads_them(parts, spaced):
    text = (" " if spaced else "").join(f"{n}{unit}" for n, unit in parts)
    assert parse_duration(text).total_seconds() == pytest.approx(sum(n * UNIT_SECONDS[u] for n, u in parts))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("today", NOW - 15 * HOUR - 30 * 60 * SECOND),
        ("yesterday", NOW - 15 * HOUR - 30 * 60 * SECOND - DAY),
        ("-2h", NOW - 2 * HOUR),
        ("+1d", NOW + DAY),
        ("7d", NOW - 7 * DAY),
        ("1month", NOW - 2_630_016 * SECOND),
        ("2026-11-01", to_micros(dt.datetime(2026, 11, 1, tzinfo=dt.UTC))),
        ("2026-11-01 08:00", to_micros(dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC))),
        ("2026-11-01T08:00:00Z", to_micros(dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC))),
        ("2026-11-01T08:00:00+02:00", to_micros(dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC))),
        ("2026-11-01T08:00:00.250000", to_micros(dt.datetime(2026, 11, 1, 8, 0, 0, 250000, tzinfo=dt.UTC))),
    ],
)
def test_times_in_every_form_people_write_them(text, expected):
    assert parse_time(text, "--since", NOW) == expected


@hypothesis.given(text=st.text(max_size=40))
def test_any_text_is_a_time_or_a_one_line_error_naming_the_option(text):
    try:
        parse_time(text, "--until", NOW)
    except BadInputError as exc:
        assert str(exc).startswith("--until: ") and "\n" not in str(exc)


def test_a_month_and_a_week_are_durations_everywhere(runner, site):
    assert parse_duration("1month") == dt.timedelta(seconds=2_630_016)
    result = invoke(runner, "certs", "check", "-i", site / "inventory.yaml", "--within", "1month")
    assert "not a duration" not in result.output


def test_analyze_takes_since_and_until_in_the_same_words(runner):
    result = invoke(
        runner,
        "analyze",
        "--journal",
        SAMPLE,
        "--since",
        "2026-11-20",
        "--until",
        "2026-11-20 08:20",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    assert events and all("2026-11-20T00:00" <= e["start"] <= "2026-11-20T08:20" for e in events)
    assert invoke(runner, "analyze", "--journal", SAMPLE, "--since", "7d").exit_code == 0
    refused = invoke(runner, "analyze", "--journal", SAMPLE, "--until", "now", "--since-last-run")
    assert refused.exit_code == 2 and "--until and --since-last-run" in refused.output
