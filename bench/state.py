"""The analysis state with many remembered lines: its size on disk, and the cost of an incremental run.

Targets (issue: exactly once): 1M remembered lines take <= 64 MB on disk; a run over 10k new lines
(with a 1M-line state) takes <= 1 s on this machine.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logstack.analyze.run import RunOptions, run_analysis
from logstack.analyze.state import StateStore, group_key
from logstack.base.clock import DAY, MINUTE, SECOND
from logstack.journal.line import from_journal
from tests.journal import entry

T0 = 1_780_000_000 * SECOND


def main() -> None:
    remembered = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.sqlite"
        started = time.perf_counter()
        state = StateStore(path)
        batch = 1000
        for first in range(0, remembered, batch):
            for n in range(first, first + batch, 2):  # events of two lines
                ts = T0 + n * SECOND
                keys = [(f"m{n % 40:032d}|s=0;i={n:x};b=x", ts), (f"m{n % 40:032d}|s=0;i={n + 1:x};b=x", ts + SECOND)]
                grp = group_key(f"m{n % 40}", "boot", str(1000 + n), "ssh")
                state.record(f"{n:020x}", [grp], ts, ts + SECOND, keys, T0 + DAY)
        state.commit(T0 + DAY)
        state.close()
        filled = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        print(f"{remembered} remembered lines: {size / 1e6:.1f} MB on disk (target <= 64 MB), filled in {filled:.1f} s")

        rows = []
        for n in range(5000):  # 10k new lines: 5000 failed logins of two lines each
            ts = T0 + DAY + n * SECOND
            for i, msg in enumerate(
                (f"Failed password for u{n} from 203.0.113.{n % 250} port {n + 1024} ssh2",
                 f"Connection closed by authenticating user u{n} 203.0.113.{n % 250} port {n + 1024} [preauth]")
            ):  # fmt: skip
                line = from_journal(entry(ts + i * 1000, "sshd-session", 30000 + n, msg))
                rows.append(dataclasses.replace(line, arrival=ts + i * 1000))

        def source(start, end):
            return [r for r in rows if (start is None or r.arrival >= start) and (end is None or r.arrival <= end)]

        now = T0 + DAY + 5000 * SECOND + 30 * MINUTE
        reported = []
        started = time.perf_counter()
        run_analysis(source, RunOptions(state_path=path, horizon=30 * DAY), reported.append, now)
        print(f"incremental run over {len(rows)} new lines: {time.perf_counter() - started:.2f} s (target <= 1 s), "
              f"{len(reported)} events")  # fmt: skip


if __name__ == "__main__":
    main()
