"""Alerts from the scheduled analysis: four kinds of destination, each receiving every event exactly once,
however long it was down. The receivers are real local servers (HTTPS, SMTP with STARTTLS, a Zabbix
trapper stand-in) and a real program."""

from __future__ import annotations

import email
import json
import socket
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logstack.analyze.state import StateStore  # noqa: F401  (the state the queues share)
from logstack.site.alerts import DESTINATIONS
from tests.alert_receivers import Trapper, Webhook, email_destination, self_signed, smtp_server
from tests.conftest import invoke
from tests.journal import entry

SMTP_USER, SMTP_PASSWORD = "logstack", "smtp-password-for-tests"
HOUR = 3600 * 1_000_000


def _failures(path: Path, start: int, count: int, user: str = "alice", first_pid: int = 1000) -> None:
    """`count` failed logins (one connection each) an hour before now: settled, ready to report."""
    with path.open("a") as out:
        for n in range(count):
            ts = start + n * 10_000_000
            pid = first_pid + n
            out.write(
                json.dumps(
                    entry(ts, "sshd-session", pid, f"Failed password for {user} from 203.0.113.9 port {pid} ssh2")
                )
                + "\n"
            )


@pytest.fixture
def receivers(tmp_path):
    cert, key = self_signed(tmp_path)
    hook = Webhook(cert, key)
    trapper = Trapper({("logstack-server", "logstack.event")})
    with smtp_server(cert, key, SMTP_USER, SMTP_PASSWORD) as (smtp_port, mails):
        destinations = [
            {
                "name": "chat",
                "type": "webhook",
                "min_severity": "info",
                "ca_file": str(cert),
                "retries": 0,
                "timeout": 5,
            },
            {
                "name": "mail",
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp_port,
                "username": SMTP_USER,
                "sender": "logstack@example.com",
                "recipients": ["security@example.com"],
                "ca_file": str(cert),
                "min_severity": "info",
                "retries": 0,
                "timeout": 3,
            },
            {
                "name": "zabbix",
                "type": "zabbix",
                "server": "127.0.0.1",
                "port": trapper.port,
                "host": "logstack-server",
                "min_severity": "info",
                "retries": 0,
            },
            {
                "name": "ticket",
                "type": "exec",
                "command": ["/bin/sh", "-c", f"cat >> {tmp_path / 'exec.jsonl'}"],
                "min_severity": "info",
                "event_types": ["ssh_login"],
                "retries": 0,
            },
        ]
        DESTINATIONS.validate_python(destinations)
        (tmp_path / "alerts.json").write_text(json.dumps({"site": "test", "destinations": destinations}))
        secrets = {
            "chat": {"url": f"https://127.0.0.1:{hook.port}/hooks/secret-token"},
            "mail": {"password": SMTP_PASSWORD},
        }
        (tmp_path / "alert-secrets.json").write_text(json.dumps(secrets))
        yield {"hook": hook, "trapper": trapper, "mails": mails, "exec": tmp_path / "exec.jsonl", "dir": tmp_path}
    hook.stop()
    trapper.stop()


def _analyze(runner, where: Path, journal: Path):
    return invoke(
        runner,
        "analyze",
        "--journal",
        journal,
        "--since-last-run",
        "--data-dir",
        where / "state",
        "--alerts",
        where / "alerts.json",
        "--alert-secrets",
        where / "alert-secrets.json",
        "--format",
        "jsonl",
    )


def _ids(events: list[dict]) -> list[str]:
    return [e["id"] for e in events]


def _mail_ids(mails: list) -> list[str]:
    ids = []
    for envelope in mails:
        message = email.message_from_bytes(envelope.content)
        for part in message.walk():
            if part.get_filename() == "events.jsonl":
                ids += [json.loads(line)["id"] for line in part.get_payload(decode=True).decode().splitlines()]
    return ids


def test_every_destination_gets_each_event_once_and_a_down_one_catches_up(receivers, runner):
    where, hook, trapper = receivers["dir"], receivers["hook"], receivers["trapper"]
    journal = where / "journal.jsonl"
    start = int(time.time() * 1_000_000) - 2 * HOUR
    _failures(journal, start, 3)
    first = _analyze(runner, where, journal)
    assert first.exit_code == 0, first.output
    reported = [json.loads(line) for line in first.stdout.splitlines()]
    assert len(reported) == 3
    assert _ids(hook.events) == _ids(reported)
    assert _mail_ids(receivers["mails"]) == _ids(reported)
    assert [json.loads(v["value"])["id"] for v in trapper.values] == _ids(reported)
    assert [json.loads(line)["id"] for line in receivers["exec"].read_text().splitlines()] == _ids(reported)
    # the webhook got a ready chat text, an idempotency key, and the URL's token stayed out of the output
    headers, body = hook.posts[0]
    assert body["text"].startswith("logstack test: 3 security events")
    assert headers["Idempotency-Key"] == body["id"]
    assert "secret-token" not in first.output

    # the webhook is down (HTTP 503) while new events come: it keeps them, the others get them now
    hook.status = 503
    _failures(journal, int(time.time() * 1_000_000) - 300_000_000, 2, user="bob", first_pid=2000)
    second = _analyze(runner, where, journal)
    assert second.exit_code == 3
    assert "alerts: chat: 127.0.0.1 answered HTTP 503 (2 events kept for the next run)" in second.output
    new = [json.loads(line) for line in second.stdout.splitlines()]
    assert len(new) == 2
    assert _mail_ids(receivers["mails"]) == _ids(reported + new)
    backlog = invoke(runner, "alerts", "backlog", "--data-dir", where / "state")
    assert "chat: 2 queued, 0 not queued (full), last error: 127.0.0.1 answered HTTP 503" in backlog.stdout

    # back up: exactly the two it missed, once; nobody else gets anything again
    hook.status = 200
    third = _analyze(runner, where, journal)
    assert third.exit_code == 0, third.output
    assert third.stdout.strip() == ""
    assert _ids(hook.events) == _ids(reported + new)
    assert _mail_ids(receivers["mails"]) == _ids(reported + new)
    assert len(trapper.values) == 5
    assert len(receivers["exec"].read_text().splitlines()) == 5
    assert "chat: 0 queued" in invoke(runner, "alerts", "backlog", "--data-dir", where / "state").stdout
    fourth = _analyze(runner, where, journal)
    assert fourth.exit_code == 0 and len(hook.events) == 5


def test_a_full_queue_counts_what_it_could_not_hold_and_says_so_when_back(receivers, runner):
    where, hook = receivers["dir"], receivers["hook"]
    config = json.loads((where / "alerts.json").read_text())
    config["destinations"] = [{**config["destinations"][0], "queue_limit": 10}]
    (where / "alerts.json").write_text(json.dumps(config))
    secrets = json.loads((where / "alert-secrets.json").read_text())
    (where / "alert-secrets.json").write_text(json.dumps({"chat": secrets["chat"]}))
    journal = where / "journal.jsonl"
    _failures(journal, int(time.time() * 1_000_000) - 2 * HOUR, 14)
    hook.status = 500
    down = _analyze(runner, where, journal)
    assert down.exit_code == 3
    reported = [json.loads(line) for line in down.stdout.splitlines()]  # every event is in the output all the same
    assert len(reported) == 15  # 14 failures and the brute-force incident they make
    assert "alerts: chat: queue full, 5 events dropped (the least severe first; they are in this output)" in (
        down.output
    )
    hook.status = 200
    back = _analyze(runner, where, journal)
    assert back.exit_code == 0, back.output
    # the alert-level incident is kept; the five oldest failures went
    kept = [e for e in reported if e["severity"] == "alert"] + [e for e in reported if e["severity"] != "alert"][5:]
    assert sorted(_ids(hook.events[:10])) == sorted(_ids(kept))
    notice = hook.events[10]
    assert notice["type"] == "alerts_dropped"
    assert notice["reason"].startswith("5 events were dropped from this destination's queue while it did not accept")
    assert len(hook.events) == 11
    assert "chat: 0 queued, 0 not queued" in invoke(runner, "alerts", "backlog", "--data-dir", where / "state").stdout


def test_alerts_test_reaches_every_destination_and_names_the_ones_that_fail(receivers, runner):
    where = receivers["dir"]
    ok = invoke(
        runner, "alerts", "test", "--alerts", where / "alerts.json", "--alert-secrets", where / "alert-secrets.json"
    )
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines() == ["chat: accepted", "mail: accepted", "zabbix: accepted", "ticket: accepted"]
    assert receivers["hook"].events[0]["type"] == "test" and len(receivers["mails"]) == 1
    # a wrong SMTP password, an unknown Zabbix item, a webhook whose certificate is not trusted
    config = json.loads((where / "alerts.json").read_text())
    config["destinations"][0].pop("ca_file")
    config["destinations"][2]["key"] = "no.such.item"
    (where / "alerts.json").write_text(json.dumps(config))
    secrets = json.loads((where / "alert-secrets.json").read_text())
    secrets["mail"]["password"] = "wrong-password-x"
    (where / "alert-secrets.json").write_text(json.dumps(secrets))
    bad = invoke(
        runner, "alerts", "test", "--alerts", where / "alerts.json", "--alert-secrets", where / "alert-secrets.json"
    )
    assert bad.exit_code == 3
    lines = bad.stdout.splitlines()
    assert lines[0].startswith("chat: FAILED: 127.0.0.1: SSLCertVerificationError")
    assert lines[1].startswith("mail: FAILED: 127.0.0.1:") and ": SMTP" in lines[1]  # refused after AUTH
    assert (
        lines[2]
        == "zabbix: FAILED: Zabbix processed 0 of 1 values (is no.such.item a trapper item of host logstack-server?)"
    )
    assert lines[3] == "ticket: accepted"
    assert "3 of 4 destinations failed: chat, mail, zabbix" in bad.output
    assert "wrong-password-x" not in bad.output


def test_starttls_is_required_before_any_password(tmp_path):
    """A server that offers no STARTTLS never gets the password: the delivery fails instead."""
    from aiosmtpd.controller import Controller

    from logstack.alerts.send import DeliveryError, send

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        dest = email_destination(port, username="u", retries=0)
        with pytest.raises(DeliveryError, match="SMTPNotSupportedError"):
            send(dest, {"password": "p" * 20}, "test", [{"id": "x", "severity": "alert", "lines": []}])
    finally:
        controller.stop()


# --- what an attack on the alerts found, each a test ---


def test_an_event_with_thousands_of_lines_is_bounded_and_batches_stay_small(tmp_path):
    import sqlite3

    from logstack.alerts import outbox
    from logstack.alerts.delivery import MAX_LINES, alert_body

    line = {"ts": "2026-12-01T00:00:00Z", "identifier": "sshd", "pid": "1", "message": "x" * 5000}
    event = {"id": "e", "type": "ssh_login", "severity": "failure", "lines": [line] * 12_000, "command": "c" * 9000}
    body = alert_body(event, "test")
    decoded = json.loads(body)
    assert len(decoded["lines"]) == MAX_LINES and decoded["lines_omitted"] == 12_000 - MAX_LINES
    assert len(body) < 60_000
    db = sqlite3.connect(":memory:", isolation_level=None)
    outbox.ensure_schema(db)
    outbox.enqueue(db, "d", [(1, body)] * 30)
    batch = outbox.next_batch(db, "d")
    assert len(batch) >= 1 and sum(len(orjson_dumps(e)) for _, e in batch) <= outbox.BATCH_BYTES


def orjson_dumps(value) -> bytes:
    import orjson

    return orjson.dumps(value)


def test_a_destination_that_is_up_gets_every_event_of_a_flood(receivers, runner):
    where, hook = receivers["dir"], receivers["hook"]
    _only_chat(where, queue_limit=10)
    journal = where / "journal.jsonl"
    _failures(journal, int(time.time() * 1_000_000) - 2 * HOUR, 14)
    run = _analyze(runner, where, journal)
    assert run.exit_code == 0, run.output
    assert len(hook.events) == len(run.stdout.splitlines()) == 15  # the limit is for a backlog, not a run


def test_a_batch_that_may_have_arrived_goes_again_exactly_as_it_was(receivers, runner):
    """The receiver took the batch but answered after the timeout: the next run sends the same events
    with the same Idempotency-Key, even though a new event came meanwhile."""
    where, hook = receivers["dir"], receivers["hook"]
    _only_chat(where, timeout=1)
    journal = where / "journal.jsonl"
    _failures(journal, int(time.time() * 1_000_000) - 2 * HOUR, 1)
    hook.delay = 2.5
    slow = _analyze(runner, where, journal)
    assert slow.exit_code == 3 and "TimeoutError" in slow.output
    hook.delay = 0
    _failures(journal, int(time.time() * 1_000_000) - 300_000_000, 1, user="bob", first_pid=3000)
    again = _analyze(runner, where, journal)
    assert again.exit_code == 0, again.output
    keys = [headers["Idempotency-Key"] for headers, _ in hook.posts]
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2]  # taken late, sent again unchanged, then the new one
    assert [len(body["events"]) for _, body in hook.posts] == [1, 1, 1]


def test_secrets_a_sender_cannot_use_are_refused_at_load_without_showing_them(tmp_path):
    from logstack.alerts.delivery import load_config
    from logstack.base.errors import SecretsError

    alerts = tmp_path / "alerts.json"
    alerts.write_text(
        json.dumps(
            {
                "site": "test",
                "destinations": [
                    {"name": "chat", "type": "webhook"},
                    {
                        "name": "mail",
                        "type": "email",
                        "host": "127.0.0.1",
                        "username": "u",
                        "sender": "a@example.com",
                        "recipients": ["b@example.com"],
                    },
                ],
            }
        )
    )
    cases = [
        ({"chat": {"url": "https://chat.example.com/hooks/SECRET-TOKEN "}, "mail": {"password": "pw"}}, "chat.url"),
        ({"chat": {"url": "https://chat.example.com:99999/SECRET-TOKEN"}, "mail": {"password": "pw"}}, "chat.url"),
        ({"chat": {"url": "https://[::1/SECRET-TOKEN"}, "mail": {"password": "pw"}}, "chat.url"),
        ({"chat": {"url": "https://h/x", "token": "SECRET-TOKEN-€"}, "mail": {"password": "pw"}}, "chat.token"),
        ({"chat": {"url": "https://h/x"}, "mail": {"password": "pässword-SECRET-TOKEN"}}, "mail.password"),
    ]
    for secrets, where in cases:
        (tmp_path / "s.json").write_text(json.dumps(secrets))
        with pytest.raises(SecretsError, match=where.replace(".", r"\.")) as caught:
            load_config(alerts, tmp_path / "s.json")
        assert "SECRET-TOKEN" not in str(caught.value)
    bad_site = tmp_path / "bad.json"
    bad_site.write_text(json.dumps({"site": "a\nb", "destinations": []}))
    with pytest.raises(Exception, match="not a logstack alerts file"):
        load_config(bad_site, None)


def test_one_destination_failing_unexpectedly_never_stops_the_others(receivers, runner, monkeypatch):
    from logstack.alerts import send as sending

    def broken(*args, **kwargs):
        raise KeyError("a defect")

    monkeypatch.setitem(sending.SENDERS, "email", broken)
    where = receivers["dir"]
    journal = where / "journal.jsonl"
    _failures(journal, int(time.time() * 1_000_000) - 2 * HOUR, 2)
    run = _analyze(runner, where, journal)
    assert run.exit_code == 3
    assert "mail: unexpected KeyError while sending (events kept)" in run.output
    assert len(receivers["hook"].events) == 2 and len(receivers["trapper"].values) == 2


@given(st.text(max_size=200), st.text(max_size=60))
def test_chat_text_keeps_what_hosts_logged_inside_code_spans(user, command):
    from logstack.alerts.send import chat_text

    text = chat_text(
        "test",
        [
            {
                "severity": "alert",
                "type": "sudo",
                "outcome": "success",
                "host": "web1",
                "user": user,
                "command": command,
                "start": "2026-12-01T00:00:00Z",
            }
        ],
    )
    head, *lines = text.split("\n")
    assert head == "logstack test: 1 security event" and len(lines) == 1
    assert lines[0].startswith("• `") and lines[0].endswith("`") and lines[0].count("`") == 2
    assert "<" not in text and ">" not in text


def test_an_internal_error_is_one_line_and_its_own_exit_code(monkeypatch, tmp_path, runner):
    from logstack.commands import alerts

    monkeypatch.delenv("LOGSTACK_DEBUG")
    monkeypatch.setattr(alerts, "backlog", lambda data_dir: 1 / 0)
    result = runner.invoke(
        __import__("logstack.cli", fromlist=["app"]).app, ["alerts", "backlog", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 70
    assert result.output.startswith("logstack: internal error: ZeroDivisionError at ")
    assert "Traceback" not in result.output


def test_email_over_implicit_tls_with_auth(tmp_path):
    """Port 465 style: TLS from the first byte, the certificate verified, then AUTH and the message."""
    from logstack.alerts.send import send
    from logstack.site.alerts import Email

    cert, key = self_signed(tmp_path)
    with smtp_server(cert, key, SMTP_USER, SMTP_PASSWORD, implicit=True) as (port, received):
        dest = Email(
            type="email",
            name="m",
            host="127.0.0.1",
            port=port,
            tls="implicit",
            username=SMTP_USER,
            sender="a@example.com",
            recipients=["b@example.com"],
            ca_file=str(cert),
            retries=0,
            timeout=5,
        )
        send(
            dest, {"password": SMTP_PASSWORD}, "test", [{"id": "e1", "severity": "alert", "type": "sudo", "lines": []}]
        )
    assert len(received) == 1 and received[0].rcpt_tos == ["b@example.com"]


def _only_chat(where, **changes) -> None:
    """The webhook alone, with `changes` to its settings."""
    config = json.loads((where / "alerts.json").read_text())
    config["destinations"] = [{**config["destinations"][0], **changes}]
    (where / "alerts.json").write_text(json.dumps(config))
    secrets = json.loads((where / "alert-secrets.json").read_text())
    (where / "alert-secrets.json").write_text(json.dumps({"chat": secrets["chat"]}))
