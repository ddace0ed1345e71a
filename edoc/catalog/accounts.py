"""The web viewer's accounts and sessions: every statement on ``web_accounts`` and
``web_sessions`` (tables in ``edoc.catalog.schema``).

The catalog only answers and records: hashing and verifying passwords, deciding when an
account locks and which role may do what belong to ``edoc.services.accounts``. Statements
are SQLAlchemy Core with bind parameters only, dialect-neutral (SQLite and PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from edoc.catalog.engine import CatalogEngine
from edoc.catalog.schema import web_accounts, web_sessions


@dataclass(frozen=True, slots=True)
class AccountRow:
    """A row of ``web_accounts``."""

    name: str
    role: str
    password_hash: str
    created_at: str
    created_by: str
    disabled_at: str | None
    failed_logins: int
    locked_until: str | None
    last_login_at: str | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A row of ``web_sessions``."""

    token_sha256: str
    account: str
    csrf_token: str
    created_at: str
    expires_at: str


class AccountTables:
    """The statements on the web viewer's tables, run on ``catalog``'s connections."""

    def __init__(self, catalog: CatalogEngine) -> None:
        self.catalog = catalog

    def ensure(self) -> None:
        """Bring an older catalog's schema up to date (``schema.upgrade`` runs in the
        first write transaction), so the reads below find the tables."""
        with self.catalog.write():
            pass

    def insert_account(self, *, name: str, role: str, password_hash: str, created_at: str,
                       created_by: str) -> bool:
        """Add an account; False if the name is taken (nothing changed)."""
        with self.catalog.write() as c:
            taken = c.execute(sa.select(web_accounts.c.name).where(
                web_accounts.c.name == name)).first()
            if taken is not None:
                return False
            c.execute(web_accounts.insert().values(
                name=name, role=role, password_hash=password_hash, created_at=created_at,
                created_by=created_by, failed_logins=0))
        return True

    def account(self, name: str) -> AccountRow | None:
        with self.catalog.read() as c:
            row = c.execute(sa.select(web_accounts).where(web_accounts.c.name == name)).first()
        return AccountRow(**row._mapping) if row is not None else None

    def accounts(self) -> list[AccountRow]:
        with self.catalog.read() as c:
            return [AccountRow(**r._mapping) for r in c.execute(
                sa.select(web_accounts).order_by(web_accounts.c.name))]

    def disable(self, name: str, at: str) -> bool:
        """Disable an account and end its sessions; False if there is no such account."""
        with self.catalog.write() as c:
            done = c.execute(web_accounts.update().where(web_accounts.c.name == name)
                             .values(disabled_at=at)).rowcount
            c.execute(web_sessions.delete().where(web_sessions.c.account == name))
        return bool(done)

    def record_failure(self, name: str, *, limit: int, locked_until: str) -> int:
        """Count one failed login in the same transaction that reads the count; at
        ``limit`` failures the account is locked until ``locked_until``. The new count."""
        with self.catalog.write() as c:
            count = c.execute(sa.select(web_accounts.c.failed_logins).where(
                web_accounts.c.name == name)).scalar()
            if count is None:
                return 0
            count = int(count) + 1
            values: dict[str, object] = {"failed_logins": count}
            if count >= limit:
                values = {"failed_logins": 0, "locked_until": locked_until}
            c.execute(web_accounts.update().where(web_accounts.c.name == name)
                      .values(**values))
        return count

    def record_login(self, name: str, at: str) -> None:
        with self.catalog.write() as c:
            c.execute(web_accounts.update().where(web_accounts.c.name == name).values(
                failed_logins=0, locked_until=None, last_login_at=at))

    def insert_session(self, row: SessionRow, *, expired_before: str) -> None:
        """Start a session; sessions expired before ``expired_before`` are removed in the
        same transaction (the table stays small without a sweeper)."""
        with self.catalog.write() as c:
            c.execute(web_sessions.delete().where(web_sessions.c.expires_at < expired_before))
            c.execute(web_sessions.insert().values(
                token_sha256=row.token_sha256, account=row.account, csrf_token=row.csrf_token,
                created_at=row.created_at, expires_at=row.expires_at))

    def session(self, token_sha256: str) -> SessionRow | None:
        with self.catalog.read() as c:
            row = c.execute(sa.select(web_sessions).where(
                web_sessions.c.token_sha256 == token_sha256)).first()
        return SessionRow(**row._mapping) if row is not None else None

    def delete_session(self, token_sha256: str) -> None:
        with self.catalog.write() as c:
            c.execute(web_sessions.delete().where(web_sessions.c.token_sha256 == token_sha256))
