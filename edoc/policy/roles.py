"""Who may run which command: roles from ``edoc.toml``, mapped from the acting identity.

Roles (issue: separation of duties in records management):
- ``clerk``: ingest, search, show, get, profiles
- ``auditor``: search, show, get, verify, evidence, export, ledger, audit-log, holds
- ``records-manager``: correct, link, delete, hold, release, purge, retention, search, show, get,
  registry import
- ``registry status`` / ``registry lookup``: clerk, auditor, records-manager
- ``admin``: everything (init, doctor, catalog rebuild, renew …)
- ``render`` (a readable PDF of an e-invoice) goes with ``get``: clerk, auditor, records-manager

The identity is ``EDOC_ACTOR`` if set, else the OS user. With no ``[roles]`` table every
identity is ``admin`` (a one-person archive). Honest limit: this is an in-application check.
Anyone who can read the archive's files or hold its storage credentials can bypass it, so the
real boundary is the operating system and, on S3, separate credentials per role (a writer
identity that cannot delete; see README "Roles").
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field

from edoc.errors import ConfigError

ROLES = ("clerk", "auditor", "records-manager", "admin")

COMMAND_ROLES: Mapping[str, frozenset[str]] = {
    "ingest": frozenset({"clerk"}),
    "search": frozenset({"clerk", "auditor", "records-manager"}),
    "show": frozenset({"clerk", "auditor", "records-manager"}),
    "get": frozenset({"clerk", "auditor", "records-manager"}),
    "render": frozenset({"clerk", "auditor", "records-manager"}),
    "profiles": frozenset({"clerk", "auditor", "records-manager"}),
    "verify": frozenset({"auditor"}),
    "evidence": frozenset({"auditor"}),
    "export": frozenset({"auditor"}),
    "ledger": frozenset({"auditor"}),
    "audit-log": frozenset({"auditor"}),
    "holds": frozenset({"auditor", "records-manager"}),
    "certificate": frozenset({"auditor", "records-manager"}),
    "correct": frozenset({"records-manager"}),
    # Confirming machine-suggested search fields is the input clerk's job (NTA Q&A: the
    # person who confirms OCR output is responsible for it).
    "confirm": frozenset({"clerk", "records-manager"}),
    # A ledger reference added later is a correction (a new version), so it is correct's.
    "link": frozenset({"records-manager"}),
    "delete": frozenset({"records-manager"}),
    "hold": frozenset({"records-manager"}),
    "release": frozenset({"records-manager"}),
    "purge": frozenset({"records-manager"}),
    "retention": frozenset({"records-manager"}),
    # The NTA invoice-issuer register: anyone who checks invoices may look a number up;
    # replacing the register is a records manager's (checked by edoc.services.registry).
    "registry": frozenset({"clerk", "auditor", "records-manager"}),
    "registry import": frozenset({"records-manager"}),
    "doctor": frozenset(),
    "catalog": frozenset(),
    "renew": frozenset(),
}


@dataclass(frozen=True)
class RoleMap:
    #: identity → roles; empty means roles are not configured (everyone is admin)
    members: Mapping[str, frozenset[str]] = field(default_factory=dict)
    default: frozenset[str] = frozenset()

    @property
    def enforced(self) -> bool:
        return bool(self.members) or bool(self.default)

    def roles_of(self, identity: str) -> frozenset[str]:
        if not self.enforced:
            return frozenset({"admin"})
        return self.members.get(identity, self.default)

    def authorize(self, identity: str, command: str) -> None:
        needed = COMMAND_ROLES.get(command)
        if needed is None:
            return  # commands that need no archive (verify-bundle, --help)
        have = self.roles_of(identity)
        if "admin" in have or needed & have:
            return
        allowed = ", ".join(sorted(needed | {"admin"}))
        raise ConfigError(
            f"{command} needs role {allowed}; {identity} has "
            f"{', '.join(sorted(have)) or 'no role'}", code="ROLE_REQUIRED",
            hint="ask an admin to add you to [roles] in edoc.toml")


def load_roles(raw: Mapping[str, object], source: str) -> RoleMap:
    """``[roles]`` table: ``clerk = ["alice"]``, …, ``default = ["clerk"]`` for unlisted
    identities (omit it to refuse them)."""
    table = raw.get("roles")
    if table is None:
        return RoleMap()
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [roles] must be a table", code="CONFIG_INVALID")
    members: dict[str, set[str]] = {}
    default: frozenset[str] = frozenset()
    for key, value in table.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: roles.{key} must be a list of names",
                              code="CONFIG_INVALID")
        if key == "default":
            bad = [v for v in value if v not in ROLES]
            if bad:
                raise ConfigError(f"{source}: roles.default names unknown role {bad[0]!r}",
                                  code="CONFIG_INVALID", hint=f"roles: {', '.join(ROLES)}")
            default = frozenset(value)
            continue
        if key not in ROLES:
            raise ConfigError(f"{source}: unknown role {key!r}", code="CONFIG_INVALID",
                              hint=f"roles: {', '.join(ROLES)}")
        for ident in value:
            members.setdefault(ident, set()).add(key)
    return RoleMap({k: frozenset(v) for k, v in members.items()}, default)


def parse(text: str, source: str) -> RoleMap:
    return load_roles(tomllib.loads(text), source)
