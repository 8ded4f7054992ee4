"""One delivery of a batch of events to one destination: accepted, or a DeliveryError saying why.

What a destination gets is built from what any local user may log (user names, commands): text goes
out with controls removed and chat markup escaped; nothing of it reaches a shell or a mail header.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import smtplib
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from logstack.base.deadline import DeadlineExceeded, within
from logstack.base.errors import LogstackError
from logstack.base.redaction import scrub
from logstack.base.safe_read import MiB, read_file
from logstack.base.terminal import escape
from logstack.site.alerts import Destination, Email, Exec, Webhook, Zabbix


class DeliveryError(Exception):
    """A destination did not accept a batch; the message never holds a secret."""


_EXEC_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def summary(event: dict[str, Any]) -> str:
    """One line about an event, for people: severity, type, host, who, from where."""
    parts = [f"{str(event.get('severity', '')).upper()} {event.get('type')} ({event.get('outcome')})"]
    parts.append(f"on {event.get('host')}")
    for label, key in (("user", "user"), ("as", "target_user"), ("from", "source_ip"), ("cmd", "command")):
        if event.get(key):
            parts.append(f"{label} {event[key]}")
    if event.get("flags"):
        parts.append("[" + ", ".join(map(str, event["flags"])) + "]")
    parts.append(f"at {event.get('start')}")
    return escape(" ".join(map(str, parts)))[:1000]


def chat_text(site: str, events: list[dict[str, Any]]) -> str:
    """A ready message for chat tools' incoming webhooks. What hosts logged goes in code spans (Slack,
    Mattermost, Teams and Rocket.Chat render neither links, images nor emphasis there), backticks in it
    are replaced so it cannot leave the span, and & < > are escaped (Slack's control characters)."""
    lines = [f"logstack {site}: {len(events)} security event{'s' if len(events) != 1 else ''}"]
    lines += ["• `" + summary(e).replace("`", "\u02cb") + "`" for e in events[:50]]
    if len(events) > 50:
        lines.append(f"… and {len(events) - 50} more")
    text = "\n".join(lines)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def batch_id(events: list[dict[str, Any]]) -> str:
    """The same events give the same id: a receiver that saw it already can drop a repeat."""
    return hashlib.sha256("\n".join(str(e.get("id")) for e in events).encode()).hexdigest()[:32]


# An attempt may take its timeout and this much more: a peer that answers nothing runs into the socket's own
# timeout first (and is named by it); one that answers a byte at a time runs into the attempt's deadline.
GRACE = 1.0


def _retrying(attempts: int, send: Callable[[], None], deadline: float) -> None:
    """Up to `attempts` tries, each bounded as a whole by `deadline` seconds (not per socket read)."""
    for attempt in range(attempts):
        try:
            try:
                within(deadline, send)
            except DeadlineExceeded as exc:
                raise DeliveryError(str(exc)) from None
            return
        except DeliveryError:
            if attempt == attempts - 1:
                raise
            time.sleep(min(2**attempt, 8))


def _tls(ca_file: str | None) -> ssl.SSLContext:
    try:  # read as any file logstack reads (a FIFO would hang it outside every deadline)
        cadata = read_file(Path(ca_file), "ca_file", MiB, follow_links=True).decode("ascii") if ca_file else None
        return ssl.create_default_context(cadata=cadata)
    except (OSError, ssl.SSLError, UnicodeDecodeError, LogstackError) as exc:
        raise DeliveryError(f"cannot read ca_file {ca_file}: {getattr(exc, 'strerror', None) or exc}") from None


def send_webhook(dest: Webhook, secrets: dict[str, str], site: str, events: list[dict[str, Any]]) -> None:
    url = secrets.get("url") or dest.url
    if not url:
        raise DeliveryError("no url: set it in the inventory or in secrets.yaml alerts.<name>.url")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or 443
    except ValueError:
        raise DeliveryError("the url is not a valid https:// URL") from None
    if parts.scheme != "https" or not parts.hostname or not url.isascii() or not url.isprintable() or " " in url:
        raise DeliveryError("the url must be an https:// URL of printable ASCII")
    body = json.dumps(
        {"source": "logstack", "site": site, "id": batch_id(events), "text": chat_text(site, events), "events": events},
        ensure_ascii=True,
    ).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": batch_id(events), "User-Agent": "logstack"}
    if secrets.get("token"):
        headers["Authorization"] = f"Bearer {secrets['token']}"
    context = _tls(dest.ca_file)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def post() -> None:
        # http.client, not urllib: no redirects (a POST is never re-sent elsewhere), no proxy variables
        conn = http.client.HTTPSConnection(parts.hostname, port, timeout=dest.timeout, context=context)
        try:
            conn.request("POST", path, body=body, headers=headers)
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException, ssl.SSLError, ValueError, UnicodeError) as exc:
            detail = f": {escape(exc.strerror)}" if isinstance(exc, OSError) and exc.strerror else ""
            raise DeliveryError(f"{parts.hostname}: {type(exc).__name__}{detail}") from None
        finally:
            conn.close()
        if not 200 <= status < 300:
            raise DeliveryError(f"{parts.hostname} answered HTTP {status}")

    _retrying(dest.retries + 1, post, dest.timeout + GRACE)


def send_email(dest: Email, secrets: dict[str, str], site: str, events: list[dict[str, Any]]) -> None:
    worst = max((str(e.get("severity")) for e in events), key=("info", "failure", "alert").index, default="info")
    message = EmailMessage()
    message["Subject"] = f"[logstack {site}] {len(events)} security event{'s' if len(events) != 1 else ''} ({worst})"
    message["From"] = dest.sender
    message["To"] = ", ".join(dest.recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{batch_id(events)}.{dest.name}@logstack.invalid>"
    blocks = [
        summary(e) + "\n" + "\n".join("    " + escape(str(x["message"])) for x in e.get("lines", [])) for e in events
    ]
    message.set_content(f"\n{'-' * 100}\n".join(blocks) + "\n")
    message.add_attachment(
        "\n".join(json.dumps(e, ensure_ascii=True) for e in events).encode(),
        maintype="application",
        subtype="x-ndjson",
        filename="events.jsonl",
    )
    if dest.username and not secrets.get("password"):
        raise DeliveryError("username set but no password in secrets.yaml alerts.<name>.password")
    context = _tls(dest.ca_file)

    def deliver() -> None:
        authenticating = False
        try:
            if dest.tls == "implicit":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(dest.host, dest.port, timeout=dest.timeout, context=context)
            else:
                smtp = smtplib.SMTP(dest.host, dest.port, timeout=dest.timeout)
            try:  # not `with smtp`: its QUIT on the way out would replace the error that ended the exchange
                if dest.tls == "starttls":
                    smtp.starttls(context=context)  # refuses to go on in clear: SMTPNotSupportedError
                if dest.username:
                    authenticating = True
                    smtp.login(dest.username, secrets["password"])
                refused = smtp.send_message(message)
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    smtp.quit()
            finally:
                smtp.close()
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            # from AUTH on, a server may echo the credentials in any encoding (base64 over continuation lines,
            # hex, percent-encoded): only the reply code is kept; before it, what it said, scrubbed
            code = getattr(exc, "smtp_code", None)
            if authenticating:
                raise DeliveryError(f"{dest.host}:{dest.port}: {type(exc).__name__} {code or ''}".rstrip()) from None
            said = scrub(str(exc), (dest.username, secrets.get("password")))
            raise DeliveryError(f"{dest.host}:{dest.port}: {type(exc).__name__}: {_short(said)}") from None
        except (ValueError, UnicodeError) as exc:  # what the server said is never echoed with a password
            raise DeliveryError(f"{dest.host}:{dest.port}: {type(exc).__name__}") from None
        if refused:
            raise DeliveryError(f"{dest.host} refused {len(refused)} of {len(dest.recipients)} recipients")

    _retrying(dest.retries + 1, deliver, dest.timeout + GRACE)


def send_zabbix(dest: Zabbix, secrets: dict[str, str], site: str, events: list[dict[str, Any]]) -> None:
    from zabbix_utils import ItemValue, Sender  # the official sender: its protocol, chunking and answers

    items = []
    for event in events:
        value = {k: event.get(k) for k in ("id", "type", "outcome", "severity", "host", "user", "source_ip", "start")}
        value["site"] = site
        value["summary"] = summary(event)
        items.append(ItemValue(dest.host, dest.key, json.dumps(value, ensure_ascii=True), _clock(event)))

    def send() -> None:
        try:
            answer = Sender(server=dest.server, port=dest.port, timeout=dest.timeout).send(items)
        except Exception as exc:  # zabbix-utils raises its own and socket errors
            raise DeliveryError(f"{dest.server}:{dest.port}: {type(exc).__name__}: {_short(exc)}") from None
        if answer.failed or answer.processed != len(items):
            raise DeliveryError(
                f"Zabbix processed {answer.processed} of {len(items)} values (is {dest.key} a trapper item of "
                f"host {dest.host}?)"
            )

    _retrying(dest.retries + 1, send, dest.timeout + GRACE)


def send_exec(dest: Exec, secrets: dict[str, str], site: str, events: list[dict[str, Any]]) -> None:
    # the batch's id, as webhooks get it in Idempotency-Key: a program can drop a batch sent again after a crash
    batch = batch_id(events)
    data = "".join(json.dumps({**e, "batch_id": batch}, ensure_ascii=True) + "\n" for e in events).encode()

    def run() -> None:
        try:
            done = subprocess.run(
                dest.command,
                input=data,
                capture_output=True,
                timeout=dest.timeout,
                env={**_EXEC_ENV, "LOGSTACK_SITE": site, "LOGSTACK_BATCH_ID": batch},
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DeliveryError(f"{dest.command[0]}: {type(exc).__name__}: {_short(exc)}") from None
        if done.returncode != 0:
            last = done.stderr.decode(errors="replace").strip().splitlines()
            raise DeliveryError(f"{dest.command[0]} exited {done.returncode}: {escape(last[-1][:200]) if last else ''}")

    _retrying(dest.retries + 1, run, dest.timeout + 5)  # subprocess.run's own timeout ends the program first


SENDERS: dict[str, Callable[[Any, dict[str, str], str, list[dict[str, Any]]], None]] = {
    "webhook": send_webhook,
    "email": send_email,
    "zabbix": send_zabbix,
    "exec": send_exec,
}


def send(dest: Destination, secrets: dict[str, str], site: str, events: list[dict[str, Any]]) -> None:
    """Deliver one batch with the destination's retries; DeliveryError when it was not accepted (its text
    holds no secret of the destination's, whatever the peer said)."""
    try:
        SENDERS[dest.type](dest, secrets, site, events)
    except DeliveryError as exc:
        raise DeliveryError(scrub(str(exc), tuple(secrets.values()))) from None


def _clock(event: dict[str, Any]) -> int:
    """The event's start as Zabbix's clock (seconds), else now."""
    import datetime as dt

    try:
        return int(dt.datetime.fromisoformat(str(event.get("start"))).timestamp())
    except (ValueError, OverflowError):
        return int(time.time())


def _short(exc: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(exc) or type(exc).__name__)
    return escape(text[:200])


__all__ = ["SENDERS", "DeliveryError", "batch_id", "chat_text", "scrub", "send", "summary"]
