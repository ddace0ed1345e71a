"""The archive as a whole: creating one, opening one, and the collaborators services share.

``Archive`` bundles the configuration, object store, catalog, profiles and notary that the
services (``edoc.services.ingest``, ``edoc.services.verification`` …) take as arguments,
so tests can hand
them a real store and a real TSA without patching anything.
"""

from __future__ import annotations

import functools
import getpass
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from edoc import clock
from edoc import config as config_mod
from edoc.catalog import Catalog
from edoc.config import ArchiveConfig, StorageConfig
from edoc.errors import ConfigError
from edoc.storage.base import ObjectStore

if TYPE_CHECKING:  # heavy (PDF/image and crypto libraries): imported when first used, so
    # that `edoc search` starts fast
    from edoc.evidence.hsm import TokenConfig
    from edoc.policy.profiles import ProfileSet
    from edoc.services.notary import Notary


def current_actor() -> str:
    """Who is acting: ``EDOC_ACTOR`` if set (service accounts), else the OS user."""
    actor = os.environ.get("EDOC_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def open_store(cfg: ArchiveConfig) -> ObjectStore:
    st = cfg.storage
    if st.kind == "local":
        from edoc.storage.local import LocalStore

        return LocalStore((cfg.dir / st.path).resolve())
    if st.kind == "s3":
        from edoc.storage.s3 import S3Store

        if st.lock_mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise ConfigError(f"storage.lock_mode {st.lock_mode!r} must be COMPLIANCE or "
                              "GOVERNANCE", code="CONFIG_INVALID")
        mode: Literal["COMPLIANCE", "GOVERNANCE"] = (
            "COMPLIANCE" if st.lock_mode == "COMPLIANCE" else "GOVERNANCE")
        style: Literal["auto", "path", "virtual"] | None = (
            st.addressing_style if st.addressing_style in ("auto", "path", "virtual")
            else None)  # type: ignore[assignment]
        return S3Store.from_config(st.bucket, st.prefix, endpoint_url=st.endpoint_url,
                                   region=st.region, profile=st.profile, lock_mode=mode,
                                   addressing_style=style)
    raise ConfigError(f"storage.kind {st.kind!r} is not known", code="CONFIG_INVALID",
                      hint="use local or s3")


@dataclass
class Archive:
    cfg: ArchiveConfig
    store: ObjectStore
    catalog: Catalog
    actor: str = field(default_factory=current_actor)

    @classmethod
    def open(cls, directory: str | None) -> Archive:
        path = config_mod.locate(directory)
        cfg = config_mod.load(path)
        catalog = Catalog(cfg.catalog_url, cfg.dir)
        catalog.check_schema()
        _claim_local_store(cfg, catalog)
        return cls(cfg, open_store(cfg), catalog)

    @functools.cached_property
    def profiles(self) -> ProfileSet:
        from edoc.policy.profiles import ProfileSet, policies_dirs

        return ProfileSet.load(policies_dirs(self.cfg.policies_dir, self.cfg.dir))

    @functools.cached_property
    def notary(self) -> Notary:
        from edoc.services.notary import Notary

        return Notary(self.cfg)

    def close(self) -> None:
        self.catalog.dispose()


def _claim_local_store(cfg: ArchiveConfig, catalog: Catalog) -> None:
    """A shared (PostgreSQL) catalog over a local-directory store: only the host and
    directory that made it may use it (``LOCAL_STORE_ELSEWHERE``; S3 is for several)."""
    if catalog.is_postgresql and cfg.storage.kind == "local":
        from edoc.catalog.coordination import coordination_for

        coordination_for(catalog, cfg.dir).claim_local_store(
            (cfg.dir / cfg.storage.path).resolve())


def _check_s3_store(storage: StorageConfig, directory: Path, now: datetime) -> None:
    """Before anything is written locally: the bucket exists (or is created) with
    versioning and Object Lock, and the server really refuses what WORM forbids."""
    from edoc.model.verdict import Status
    from edoc.storage.s3 import S3Store
    from edoc.storage.s3_probe import worm_self_test

    probe = ArchiveConfig(dir=directory, archive_id="", organisation="", created="",
                          storage=storage)
    store = open_store(probe)
    assert isinstance(store, S3Store)
    store.ensure_bucket(create=True)
    failed = [c for c in worm_self_test(store, now=now) if c.status is Status.FAIL]
    if failed:
        raise ConfigError(
            "the store does not behave as write-once: " + "; ".join(
                f"{c.code} ({c.detail})" for c in failed),
            code="STORE_NOT_WORM",
            hint="use a bucket and server with working S3 Object Lock (see 'edoc doctor')")


def init_archive(directory: Path, *, organisation: str, storage: StorageConfig | None = None,
                 fiscal_year_end: tuple[int, int] | None = None,
                 default_retention: tuple[str, ...] = (),
                 pkcs11: TokenConfig | None = None, entity: str = "corporation",
                 catalog_url: str | None = None) -> Archive:
    """Create a new archive with the embedded defaults; refuse to touch an existing one.
    ``catalog_url``: a PostgreSQL catalog (default: SQLite in the directory)."""
    from edoc.evidence import pki
    from edoc.model import ids

    directory = directory.expanduser().resolve()
    cfg_path = directory / config_mod.CONFIG_NAME
    keys_dir = directory / "keys"
    if cfg_path.exists() or (keys_dir.exists() and any(keys_dir.iterdir())):
        raise ConfigError(f"{directory} already holds an archive; refusing to overwrite "
                          "its keys or settings", code="ARCHIVE_EXISTS",
                          hint="choose an empty directory")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory", code="ARCHIVE_NOT_A_DIRECTORY")
    now = clock.now()
    storage = storage or StorageConfig()
    if storage.kind == "s3":
        _check_s3_store(storage, directory, now)
    os.umask(0o077)  # archive files are private to the archive's OS user
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cfg = ArchiveConfig(
        dir=directory,
        archive_id=ids.new_record_id(),
        organisation=organisation,
        created=now.isoformat(timespec="seconds"),
        entity=config_mod.parse_entity("--entity", entity),
        default_retention=default_retention,
        fiscal_year_end=fiscal_year_end or (3, 31),
        storage=storage,
        seal_backend="pkcs11" if pkcs11 else "file",
        pkcs11=pkcs11,
        catalog_url=catalog_url or config_mod.DEFAULT_CATALOG_URL,
    )
    passphrase = cfg.passphrase()
    keys_dir.mkdir(mode=0o700, exist_ok=True)
    seal_public = None
    if pkcs11 is not None:
        from edoc.evidence.hsm import generate_key

        seal_public = generate_key(pkcs11)
    pki.generate_dev_pki(keys_dir, organisation=organisation or "edoc archive",
                         passphrase=passphrase, seal_public_key=seal_public)
    store = open_store(cfg)
    catalog = Catalog(cfg.catalog_url, cfg.dir)
    catalog.create()
    _claim_local_store(cfg, catalog)
    # The settings file is written last: its presence is what marks a finished archive.
    tmp = cfg_path.with_name(f".{cfg_path.name}.{secrets.token_hex(4)}")
    tmp.write_text(config_mod.render(cfg), encoding="utf-8")
    tmp.replace(cfg_path)
    return Archive(config_mod.load(directory), store, catalog)
