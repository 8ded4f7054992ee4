"""The planner as a table: what each combination of rendered and remote state leads to."""

from __future__ import annotations

import hashlib

import pytest

from logstack.deploy.plan import RemoteFile, apply_script, make_plan
from logstack.render.rendered import RenderedFile


def rf(
    path: str, content: bytes = b"new", service: str | None = "vector", unit: bool = False, secret: bool = False
) -> RenderedFile:
    return RenderedFile("hosts/a", path, content, "root", "vector", 0o640, service, secret, unit)


NEW = hashlib.sha256(b"new").hexdigest()
OLD = hashlib.sha256(b"old").hexdigest()
SAME = RemoteFile(NEW, 0o640, "root", "vector")

CASES = [
    # files, remote, owed, expected actions, restart, daemon_reload
    ([rf("/etc/vector/vector.yaml")], {}, [], ["create"], ["vector"], False),
    (
        [rf("/etc/vector/vector.yaml")],
        {"/etc/vector/vector.yaml": RemoteFile(OLD, 0o640, "root", "vector")},
        [],
        ["update"],
        ["vector"],
        False,
    ),
    ([rf("/etc/vector/vector.yaml")], {"/etc/vector/vector.yaml": SAME}, [], ["unchanged"], [], False),
    (
        [rf("/etc/vector/vector.yaml")],
        {"/etc/vector/vector.yaml": RemoteFile(NEW, 0o644, "root", "vector")},
        [],
        ["fix"],
        [],
        False,
    ),
    (
        [rf("/etc/vector/vector.yaml")],
        {"/etc/vector/vector.yaml": RemoteFile(NEW, 0o640, "root", "root")},
        [],
        ["fix"],
        [],
        False,
    ),
    ([rf("/etc/systemd/system/x.service", unit=True, service="x")], {}, [], ["create"], ["x"], True),
    (
        [rf("/etc/systemd/system/x.service", unit=True, service="x")],
        {"/etc/systemd/system/x.service": SAME},
        [],
        ["unchanged"],
        [],
        False,
    ),
    ([rf("/etc/logstack/schema.sql", service=None)], {}, [], ["create"], [], False),
    # a run that died after the swap left restarts owed
    (
        [rf("/etc/vector/vector.yaml")],
        {"/etc/vector/vector.yaml": SAME},
        ["vector", "daemon-reload"],
        ["unchanged"],
        ["vector"],
        True,
    ),
    ([rf("/etc/a.yaml"), rf("/etc/b.yaml")], {"/etc/a.yaml": SAME}, [], ["unchanged", "create"], ["vector"], False),
]


@pytest.mark.parametrize(("files", "remote", "owed", "actions", "restart", "reload"), CASES)
def test_plan(files, remote, owed, actions, restart, reload):
    plan = make_plan("a", files, remote, owed)
    assert [c.action for c in sorted(plan.changes, key=lambda c: c.file.path)] == actions
    assert plan.restart == restart
    assert plan.daemon_reload is reload
    assert plan.changed is (actions != ["unchanged"] * len(actions) or bool(owed))


def test_secret_updates_say_diff_hidden():
    plan = make_plan(
        "a",
        [rf("/etc/vector/tls/client.key", secret=True)],
        {"/etc/vector/tls/client.key": RemoteFile(OLD, 0o640, "root", "vector")},
    )
    assert plan.changes[0].describe == "update  /etc/vector/tls/client.key (secret, diff hidden)"
    assert plan.summary() == "1 to update; restart vector"


@pytest.mark.parametrize(
    ("have", "fixed"),
    [
        (RemoteFile(None, 0o755, "root", "root"), False),
        (RemoteFile(None, 0o755, "root", "vector"), False),
        (RemoteFile(None, 0o700, "root", "root"), True),  # the services' users cannot enter
        (RemoteFile(None, 0o750, "root", "root"), True),
        (RemoteFile(None, 0o775, "root", "root"), True),  # a group may swap files
        (RemoteFile(None, 0o757, "root", "root"), True),
        (RemoteFile(None, 0o755, "vector", "vector"), True),  # another owner may swap files
    ],
)
def test_directories_of_managed_files_are_checked(have, fixed):
    plan = make_plan("a", [rf("/etc/vector/tls/ca.pem")], {}, [], {"/etc/vector/tls": have})
    assert bool(plan.dir_fixes) is fixed
    assert plan.changed
    if fixed:
        assert plan.dir_fixes[0].describe.startswith("fix     /etc/vector/tls (")
        assert "director" in plan.summary()


def test_owed_restarts_are_only_those_the_plan_could_owe():
    files = [rf("/etc/vector/vector.yaml")]
    plan = make_plan("a", files, {"/etc/vector/vector.yaml": SAME}, ["--now", "\x1b]0;x\x07vector", "sshd", "vector"])
    assert plan.restart == ["vector"] and plan.owed == ["vector"]
    assert "--now" not in apply_script(plan) and "sshd" not in apply_script(plan)


def test_text_from_the_target_is_printed_escaped(capsys):
    from logstack.commands.plan_output import print_plan, print_results
    from logstack.deploy.result import HostResult

    plan = make_plan(
        "a",
        [rf("/etc/vector/tls/client.key", secret=True)],
        {"/etc/vector/tls/client.key": RemoteFile(NEW, 0o644, "\x1b[2Jroot", "vector")},
    )
    result = HostResult("a", "failed", "remote said \x1b]0;owned\x07", plan, diff=["-old \x1b[31mred\n"])
    print_plan(result)
    print_results([result])
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err and "\x07" not in out.out + out.err
    assert "\\x1b[2Jroot" in out.out and "\\x1b]0;owned\\x07" in out.err
