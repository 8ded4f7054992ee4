"""Site secrets (database passwords) in secrets.yaml beside the inventory, mode 0600."""

from __future__ import annotations

import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from logstack.base.errors import LogstackError, SecretsError
from logstack.base.fsutil import atomic_write
from logstack.base.safe_read import KiB, MiB, read_file
from logstack.base.validation import S3_KEY_RE
from logstack.site.alerts import ALL_SECRET_KEYS

DB_USERS: tuple[str, ...] = ("admin", "vector", "analyst")
S3_KEYS: tuple[str, ...] = ("access_key_id", "secret_access_key")
# users.conf splits on '=' and the user list on ','; GreptimeDB skips a line whose password has '='.
# A password beginning with a verifier name followed by ':' would be read as that verifier's hash
# (GreptimeDB v1.1.4 src/auth/src/user_provider.rs: `plain:`, `pbkdf2_sha256:`, `mysql_native_password:`).
_PASSWORD_RE = re.compile(r"[A-Za-z0-9._~+/@-]{16,128}")


@dataclass(frozen=True)
class Secrets:
    """Database passwords by user."""

    db_passwords: dict[str, str]
    alerts: dict[str, dict[str, str]] = field(default_factory=dict)  # destination -> url/token/password
    store: dict[str, str] = field(default_factory=dict)  # object storage: access_key_id, secret_access_key
    backup: dict[str, str] = field(default_factory=dict)  # S3 for backups: access_key_id, secret_access_key

    def db_password(self, user: str) -> str:
        return self.db_passwords[user]

    def s3_keys(self, section: str, needed_for: str, where: Path) -> dict[str, str]:
        """The S3 key pair of `section` (store, backup); a missing key is a one-line error naming it."""
        pair: dict[str, str] = getattr(self, section)
        for key in S3_KEYS:
            if not pair.get(key):
                raise SecretsError(f"{where}: {section}.{key}: needed for {needed_for}")
        return {key: pair[key] for key in S3_KEYS}


def secrets_path(site_dir: Path) -> Path:
    return site_dir / "secrets.yaml"


def generate_secrets() -> Secrets:
    """Fresh random passwords (URL-safe alphabet, never '=' or ',')."""
    return Secrets({user: secrets.token_urlsafe(24) for user in DB_USERS})


def write_secrets(path: Path, value: Secrets) -> None:
    """Write secrets.yaml atomically with mode 0600; refuses to overwrite an existing file."""
    if path.exists():
        raise SecretsError(f"{path}: already exists; not overwriting site secrets")
    text = "# logstack site secrets: keep this file private (mode 0600), never commit it.\n" + yaml.safe_dump(
        {"greptimedb": dict(value.db_passwords)}, sort_keys=False
    )
    atomic_write(path, text, mode=0o600)


def load_secrets(path: Path) -> Secrets:
    """Read and check secrets.yaml; every problem is one SecretsError naming file and key."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SecretsError(f"{path}: not found (run `logstack init` to create it)") from None
    except OSError as exc:
        raise SecretsError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read for ever
        raise SecretsError(f"{path}: not a regular file")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise SecretsError(f"{path}: mode {stat.S_IMODE(st.st_mode):04o} is too open; run chmod 600 {path}")
    try:
        text = read_file(path, "secrets", 16 * MiB, follow_links=True, error=SecretsError).decode("utf-8")
    except OSError as exc:
        raise SecretsError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SecretsError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # Never the message itself: PyYAML quotes the offending line, which may hold a password.
        mark = exc.problem_mark or exc.context_mark
        raise SecretsError(f"{path}:{mark.line + 1 if mark else 1}: YAML syntax error") from None
    except (yaml.YAMLError, RecursionError, ValueError):
        raise SecretsError(f"{path}: not a readable YAML file") from None
    db = data.get("greptimedb") if isinstance(data, dict) else None
    if not isinstance(db, dict):
        raise SecretsError(f"{path}: greptimedb: a mapping of user: password is required")
    passwords: dict[str, str] = {}
    for user in DB_USERS:
        value = db.get(user)
        if not isinstance(value, str) or not _PASSWORD_RE.fullmatch(value):
            raise SecretsError(
                f"{path}: greptimedb.{user}: missing, or not 16-128 characters of [A-Za-z0-9._~+/@-] "
                "(GreptimeDB's users.conf cannot hold '=' or ',', and reads 'name:' as a password format)"
            )
        passwords[user] = value
    return Secrets(
        passwords,
        _alert_secrets(path, data.get("alerts")),
        _store_secrets(path, data.get("store"), "store"),
        _store_secrets(path, data.get("backup"), "backup"),
    )


def _store_secrets(path: Path, raw: object, section: str) -> dict[str, str]:
    """`store:` (the standalone store on object storage) or `backup:` (backups on S3): an S3 key pair."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SecretsError(f"{path}: {section}: a mapping of access_key_id and secret_access_key is required")
    for key, value in raw.items():
        if key not in ("access_key_id", "secret_access_key"):
            raise SecretsError(f"{path}: {section}.{str(key)[:40]!r}: unknown key (access_key_id, secret_access_key)")
        if not isinstance(value, str) or not S3_KEY_RE.fullmatch(value):
            raise SecretsError(f"{path}: {section}.{key!r}: must be 1-256 characters of [A-Za-z0-9+/=._~-]")
    return dict(raw)


_KEY_LIST = ", ".join(ALL_SECRET_KEYS[:-1]) + " or " + ALL_SECRET_KEYS[-1]


def _alert_secrets(path: Path, raw: object) -> dict[str, dict[str, str]]:
    """`alerts: {destination: {url|token|password: text}}`, checked; values are never shown."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SecretsError(f"{path}: alerts: a mapping of destination name to its secrets is required")
    found: dict[str, dict[str, str]] = {}
    for name, entry in raw.items():
        if not isinstance(name, str) or not isinstance(entry, dict):
            raise SecretsError(f"{path}: alerts.{str(name)[:40]!r}: a mapping of url, token or password is required")
        for key, value in entry.items():
            if key not in ALL_SECRET_KEYS:
                raise SecretsError(f"{path}: alerts.{name!r}.{str(key)[:40]!r}: unknown key ({_KEY_LIST})")
            if not isinstance(value, str) or not value or len(value) > 4096 or not value.isprintable():
                raise SecretsError(f"{path}: alerts.{name!r}.{key}: must be printable text of 1-4096 characters")
        found[name] = dict(entry)
    return found


def read_passphrase(
    env_value: str | None, passphrase_file: Path | None, error: type[LogstackError] = SecretsError
) -> bytes | None:
    """A passphrase from its file (which wins) or an environment variable's value; problems are `error`s."""
    if passphrase_file is not None:
        try:
            raw = read_file(passphrase_file, "passphrase file", 64 * KiB, follow_links=True, error=error)
            value = raw.decode("utf-8").rstrip("\n")
        except OSError as exc:
            raise error(f"{passphrase_file}: cannot read passphrase file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise error(f"{passphrase_file}: cannot read passphrase file: not UTF-8 text") from None
        if not value:
            raise error(f"{passphrase_file}: passphrase file is empty")
        return value.encode("utf-8")
    if env_value:
        return env_value.encode("utf-8")
    return None
