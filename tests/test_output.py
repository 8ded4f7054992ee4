"""Text output: blocks in the order events happened, however many runs they were spooled in."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from logstack.analyze import output
from logstack.analyze.event import Event
from logstack.analyze.output import EventWriter, TextBlocks, text_block
from logstack.base.exit_codes import ExitStatus

_TYPES = ("ssh_login", "sudo", "brute_force", "su")


def _event(n: int, start: int, length: int, id_: str, kind: str, outcome: str, user: str) -> Event:
    return Event(
        id=id_,
        type=kind,
        outcome=outcome,
        host=f"host{n % 3}",
        machine_id=None,
        boot_id=None,
        pids=[str(n)],
        start=start,
        end=start + length,
        user=user,
    )


_EVENTS = st.lists(
    st.builds(
        _event,
        st.integers(0, 50),
        st.integers(-(2**62), 2**62),
        st.sampled_from([0, 1, 5]),
        st.sampled_from(["a", "b", "c", "d" * 20]),
        st.sampled_from(_TYPES),
        st.sampled_from(["success", "failure", "info"]),
        st.text(max_size=30),  # any text: controls, bidi overrides, surrogates are escaped in blocks
    ),
    max_size=60,
)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(events=_EVENTS, run=st.integers(1, 70), runs=st.integers(2, 40))
def test_blocks_come_out_as_a_stable_sort_of_every_event_held_would(events, run, runs):
    """Spooled in runs of any size, merged into one past `RUNS` of them, the blocks are those of the events sorted
    by (start, end, id), equal ones in the order they came: what sorting every event held in memory gave."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(output, "RUNS", runs)
        blocks = TextBlocks(run)
        for event in events:
            blocks.add(event)
        assert len(blocks._runs) < runs  # what it holds open: no public measure of it
        want = [text_block(event) for event in sorted(events, key=lambda e: (e.start, e.end, e.id))]
        assert list(blocks.blocks()) == want
    assert sum(blocks.severities.values()) == len(events)


_DRIVER = """
import sys
from logstack.analyze import output
from logstack.cli import main
output.RUN, output.SPOOL = 2, 64
sys.argv = ["logstack", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_temporary_directory_that_cannot_take_the_output_is_named_in_one_line(tmp_path, fmt):
    """Files limited to 1 KB (a full disk answers as this does): the spool's failure is one line naming the
    directory and a runtime failure's exit status, nothing on stdout; not a defect to report."""
    import resource
    import subprocess
    import sys

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    sample = Path(__file__).parent.parent / "examples" / "journal-sample.json"
    args = ["analyze", "--journal", str(sample), "--since", "2026-11-20", "--format", fmt]
    got = subprocess.run(
        [sys.executable, "-c", _DRIVER, *args],
        capture_output=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        preexec_fn=limited,
        check=False,
    )
    assert got.returncode == ExitStatus.RUNTIME_FAILURE, got.stderr
    message = f"cannot keep the output in {tmp_path}: File too large"
    assert got.stderr.decode().strip() == f"logstack: error: {message}"
    # no event: json's stdout is its error document alone
    assert got.stdout == b"" if fmt == "text" else json.loads(got.stdout) == {"error": message, "exit": 3}


def test_text_output_of_many_events_holds_one_run_and_leaves_no_file(tmp_path, monkeypatch):
    """More events than a run: they are spooled to unnamed files (nothing left in the temporary directory), and
    the text is the same as one run would give, with the summary counting every event."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    events = [_event(n, (n * 7919) % 1000, n % 3, f"{n:04x}", _TYPES[n % 4], "failure", "root") for n in range(250)]
    texts = []
    for run in (10, 10_000):
        monkeypatch.setattr(output, "RUN", run)
        raw = io.StringIO()
        writer = EventWriter(raw, "text")
        for event in events:
            writer.write(event)
        assert list(Path(tmp_path).iterdir()) == []  # unlinked as made
        writer.close()
        texts.append(raw.getvalue())
    assert texts[0] == texts[1]
    assert texts[0].splitlines()[-1].startswith("250 events: ")
    assert os.listdir(tmp_path) == []


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(events=_EVENTS, spool=st.sampled_from([1, 200, 8 << 20]), given=st.lists(st.booleans()))
def test_json_is_one_array_of_what_jsonl_gives(events, spool, given):
    """The json array holds, in order, the events jsonl writes (each event written or given as JSON lines), however
    much of it waited in a temporary file."""
    import json

    streams = {}
    with_spool = output.SPOOL
    output.SPOOL = spool
    try:
        for fmt in ("json", "jsonl"):
            raw = io.BytesIO()
            writer = EventWriter(io.TextIOWrapper(raw, encoding="utf-8", write_through=True), fmt)
            for n, event in enumerate(events):
                if n < len(given) and given[n]:  # as the columns give them: JSON lines already escaped
                    probe = io.BytesIO()
                    wrapper = io.TextIOWrapper(probe, encoding="utf-8", write_through=True)
                    EventWriter(wrapper, "jsonl").write(event)
                    writer.write_json_lines(probe.getvalue())
                else:
                    writer.write(event)
            writer.close()
            streams[fmt] = raw.getvalue()
    finally:
        output.SPOOL = with_spool
    assert json.loads(streams["json"]) == [json.loads(line) for line in streams["jsonl"].splitlines()]
    assert streams["json"] == (b"[\n" + b",\n".join(streams["jsonl"].splitlines()) + b"\n]\n" if events else b"[]\n")
