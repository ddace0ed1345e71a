"""Accounts of the web viewer (``edoc user``, ``edoc serve``): adding and disabling them,
logging in and out, sessions, lock-out, what each role may do, and the viewer's own lines in
the access log.

Passwords are hashed with argon2id (RFC 9106) and never stored, logged or echoed; a session
cookie carries a random token whose SHA-256 only is kept (a copy of the catalog does not let
anyone log in). After ``LOCK_AFTER`` failed logins an account is locked for ``LOCK_FOR``; the
count lives in the catalog, so restarting the server does not reset it. Roles are the
archive's (``edoc.policy.roles``): ``staff`` reads as a ``clerk`` does, an ``auditor`` also
verifies and takes evidence bundles; nobody changes a record through the viewer.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from edoc import clock
from edoc.catalog.accounts import AccountRow, AccountTables, SessionRow
from edoc.clock import utc_text
from edoc.errors import ConfigError, EdocError, InputError, NotFound
from edoc.policy.roles import COMMAND_ROLES
from edoc.services.archive import Archive

#: the roles an account may have; each maps to the archive role whose commands it may run
WEB_ROLES: dict[str, str] = {"auditor": "auditor", "staff": "clerk", "admin": "admin"}
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
SESSION_FOR = timedelta(hours=8)
MIN_PASSWORD = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class LoginRefused(EdocError):
    """A login that did not succeed: the message never says whether the name exists."""

    code = "LOGIN_FAILED"


@dataclass(frozen=True, slots=True)
class Account:
    """An account as the viewer and ``user list`` show it (no hash)."""

    name: str
    role: str
    created_at: str
    created_by: str
    disabled: bool
    locked_until: str | None
    last_login_at: str | None

    @property
    def actor(self) -> str:
        """The identity in the access log: the account name, marked as the viewer's."""
        return f"web:{self.name}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "created_at": self.created_at,
                "created_by": self.created_by, "disabled": self.disabled,
                "locked_until": self.locked_until, "last_login_at": self.last_login_at}


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in session: its account and the CSRF token every POST must carry."""

    account: Account
    csrf_token: str


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()


def _account(row: AccountRow) -> Account:
    return Account(row.name, row.role, row.created_at, row.created_by,
                   row.disabled_at is not None, row.locked_until, row.last_login_at)


def tables(archive: Archive) -> AccountTables:
    t = AccountTables(archive.catalog)
    t.ensure()
    return t


def may(role: str, command: str) -> bool:
    """Whether an account of ``role`` may do what ``command`` (an ``edoc`` command name:
    search, show, get, render, verify, evidence) does, by the archive's role table."""
    archive_role = WEB_ROLES.get(role)
    if archive_role is None:
        return False
    return archive_role == "admin" or archive_role in COMMAND_ROLES.get(command, frozenset())


def _require_admin(archive: Archive, by: str) -> None:
    if "admin" not in archive.cfg.roles.roles_of(by):
        raise ConfigError(f"managing viewer accounts needs role admin; {by} has "
                          f"{', '.join(sorted(archive.cfg.roles.roles_of(by))) or 'no role'}",
                          code="ROLE_REQUIRED",
                          hint="ask an admin to add you to [roles] in edoc.toml")


def add_account(archive: Archive, name: str, role: str, password: str, *, by: str) -> Account:
    """Add an account (admins only). The password is hashed here and goes no further."""
    _require_admin(archive, by)
    if not _NAME.match(name):
        raise InputError(f"account name {name!r} is not allowed", code="BAD_ACCOUNT_NAME",
                         hint="letters, digits and . _ @ -, at most 64 characters")
    if role not in WEB_ROLES:
        raise InputError(f"role {role!r} is not known", code="BAD_ROLE",
                         hint=f"roles: {', '.join(WEB_ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password is shorter than {MIN_PASSWORD} characters",
                         code="WEAK_PASSWORD", hint="choose a longer passphrase")
    t = tables(archive)
    now = utc_text(clock.now())
    if not t.insert_account(name=name, role=role, password_hash=_hasher().hash(password),
                            created_at=now, created_by=by):
        raise InputError(f"account {name} exists", code="ACCOUNT_EXISTS")
    row = t.account(name)
    assert row is not None
    return _account(row)


def list_accounts(archive: Archive, *, by: str) -> list[Account]:
    _require_admin(archive, by)
    return [_account(r) for r in tables(archive).accounts()]


def disable_account(archive: Archive, name: str, *, by: str) -> None:
    """Disable an account and end its sessions (kept, so the access log's names stay
    meaningful)."""
    _require_admin(archive, by)
    if not tables(archive).disable(name, utc_text(clock.now())):
        raise NotFound(f"no account {name}")


def login(archive: Archive, name: str, password: str) -> tuple[str, Session]:
    """Check a name and password; a new session's cookie token and the session.

    Refuses with ``LOGIN_FAILED`` (wrong name or password, or a disabled account: the
    message is the same) or ``ACCOUNT_LOCKED``. Every attempt is in the access log."""
    from argon2.exceptions import InvalidHashError, VerificationError

    t = tables(archive)
    now = clock.now()
    row = t.account(name) if _NAME.match(name) else None
    hasher = _hasher()
    if row is None or row.disabled_at is not None:
        # Hash anyway, so the time taken does not tell whether the name exists.
        with contextlib.suppress(VerificationError, InvalidHashError):
            hasher.verify(_DUMMY_HASH.value(hasher), password)
        # A name typed by anyone goes into the log only if it could be an account's.
        log_view(archive, f"web:{name if _NAME.match(name) else '?'}", "web-login-failed", [])
        raise LoginRefused("wrong account name or password")
    if row.locked_until is not None and row.locked_until > utc_text(now):
        log_view(archive, f"web:{name}", "web-login-locked", [])
        raise LoginRefused(f"account locked until {row.locked_until[:19]}Z after "
                           f"{LOCK_AFTER} failed logins", code="ACCOUNT_LOCKED")
    try:
        hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        count = t.record_failure(name, limit=LOCK_AFTER,
                                 locked_until=utc_text(now + LOCK_FOR))
        log_view(archive, f"web:{name}", "web-login-failed", [],
                 {"locked": count >= LOCK_AFTER})
        raise LoginRefused("wrong account name or password") from None
    t.record_login(name, utc_text(now))
    token = secrets.token_urlsafe(32)
    session = SessionRow(_digest(token), name, secrets.token_urlsafe(32), utc_text(now),
                         utc_text(now + SESSION_FOR))
    t.insert_session(session, expired_before=utc_text(now))
    log_view(archive, f"web:{name}", "web-login", [])
    fresh = t.account(name)
    assert fresh is not None
    return token, Session(_account(fresh), session.csrf_token)


def session(archive: Archive, token: str) -> Session | None:
    """The live session a cookie token names, or None (unknown, expired, or its account
    disabled since)."""
    if not token or len(token) > 200:
        return None
    t = AccountTables(archive.catalog)
    row = t.session(_digest(token))
    if row is None or row.expires_at <= utc_text(clock.now()):
        return None
    acc = t.account(row.account)
    if acc is None or acc.disabled_at is not None:
        return None
    return Session(_account(acc), row.csrf_token)


def logout(archive: Archive, token: str, actor: str) -> None:
    AccountTables(archive.catalog).delete_session(_digest(token))
    log_view(archive, actor, "web-logout", [])


def log_view(archive: Archive, actor: str, action: str, record_ids: list[str],
             detail: dict[str, Any] | None = None) -> None:
    """A line in the access log (the one ``edoc audit-log`` reads and each checkpoint
    seals) for what the viewer showed that no reading service logged itself."""
    archive.catalog.log_access(actor=actor, action=action, record_ids=record_ids,
                               detail=detail, at=clock.now())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _DummyHash:
    """A hash of a random password, made once, to spend the same time on unknown names."""

    def __init__(self) -> None:
        self._value: str | None = None

    def value(self, hasher: Any) -> str:
        if self._value is None:
            self._value = str(hasher.hash(secrets.token_urlsafe(16)))
        return self._value


_DUMMY_HASH = _DummyHash()
