"""Creating an archive (``edoc init``) and opening one whose catalog may be broken
(``edoc catalog rebuild``): the two ways in that do not go through ``Archive.open``.

``create_archive`` checks what the command line asked for (known retention rules, a store
that is ``local`` or ``s3://BUCKET/PREFIX``, a complete PKCS#11 token) before anything is
written, then hands over to ``edoc.services.archive.init_archive``; what it returns is
what the user is told about the new archive (the store's honest guarantee included).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edoc import config as config_mod
from edoc.catalog import Catalog
from edoc.config import StorageConfig
from edoc.errors import ConfigError
from edoc.services.archive import Archive, init_archive, open_store


@dataclass(frozen=True, slots=True)
class CreatedArchive:
    """A new archive, as ``edoc init`` reports it."""

    directory: Path
    archive_id: str
    storage_kind: str
    #: the store's one-line description of what it guarantees (WORM or WORM-style)
    storage_guarantee: str
    #: ``corporation`` or ``individual``, and the base retention rule that implies
    entity: str = "corporation"
    base_rule: str = "corporate-tax"
    #: ``sqlite`` (a file in the directory) or ``postgresql`` (a shared server)
    catalog_kind: str = "sqlite"


@dataclass(frozen=True, slots=True)
class Pkcs11Request:
    """``--pkcs11-*``: keep the seal key in a token (module and token label go together)."""

    module: str | None
    token: str | None
    key_label: str
    pin_env: str


def check_retention_rules(rules: tuple[str, ...]) -> None:
    """Every ``--retention`` rule is one edoc knows (else ``RETENTION_UNKNOWN``)."""
    from edoc.policy import retention as retention_mod

    for rule in rules:
        if not retention_mod.is_known_rule(rule):
            raise ConfigError(f"--retention {rule} is not a known rule",
                              code="RETENTION_UNKNOWN")


def create_archive(directory: Path, *, organisation: str, fiscal_year_end: str | None,
                   default_retention: tuple[str, ...], storage: StorageConfig,
                   pkcs11: Pkcs11Request | None = None,
                   entity: str = "corporation", catalog: str | None = None) -> CreatedArchive:
    """Create the archive (``init_archive``) after checking the token settings, the entity
    type and the fiscal-year end (``MM-DD``; by default 03-31 for a corporation, 12-31 for
    an individual, whose tax year is the calendar year)."""
    from edoc.policy.retention import BASE_RULE

    entity = config_mod.parse_entity("--entity", entity)
    catalog_url = config_mod.catalog_url_for_init(catalog)
    probe = Catalog(catalog_url, directory)
    try:
        probe.check_new()  # before any key is made: a bad URL leaves nothing behind
    finally:
        probe.dispose()
    if fiscal_year_end is None:
        fiscal_year_end = "12-31" if entity == "individual" else "03-31"
    token = None
    if pkcs11 is not None and (pkcs11.module or pkcs11.token):
        from edoc.evidence.hsm import TokenConfig

        if not (pkcs11.module and pkcs11.token):
            raise ConfigError("--pkcs11-module and --pkcs11-token go together",
                              code="USAGE_ERROR")
        token = TokenConfig(pkcs11.module, pkcs11.token, pkcs11.key_label, pkcs11.pin_env)
    a = init_archive(directory, organisation=organisation,
                     fiscal_year_end=config_mod.parse_month_day("--fiscal-year-end", "value",
                                                                fiscal_year_end),
                     default_retention=default_retention, storage=storage, pkcs11=token,
                     entity=entity, catalog_url=catalog_url)
    if a.catalog.is_postgresql:
        a.close()  # reported, not used: its connections to the server end here
    return CreatedArchive(a.cfg.dir, a.cfg.archive_id, a.store.kind, a.store.guarantee,
                          a.cfg.entity, BASE_RULE[a.cfg.entity],
                          "sqlite" if a.catalog.is_sqlite else "postgresql")


def open_for_rebuild(directory: str | None) -> Archive:
    """The archive at ``directory`` with its catalog opened but not checked: it may be
    missing or corrupt, which is why it is being rebuilt."""
    cfg = config_mod.load(config_mod.locate(directory))
    return Archive(cfg, open_store(cfg), Catalog(cfg.catalog_url, cfg.dir))
