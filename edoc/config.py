"""The archive's settings: ``edoc.toml``, where it is found, and what it may contain.

``edoc.toml`` holds every setting and no secret: key passphrases, TSA passwords and storage
credentials are named by the environment variable that holds them, never stored. An archive
is found from ``--archive DIR``, then ``EDOC_ARCHIVE``, then the current directory.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from edoc.errors import ConfigError
from edoc.evidence.hsm import TokenConfig
from edoc.policy.roles import RoleMap, load_roles

CONFIG_NAME = "edoc.toml"
ENV_ARCHIVE = "EDOC_ARCHIVE"


@dataclass(frozen=True)
class StorageConfig:
    kind: str = "local"
    path: str = "store"
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    lock_mode: str = "COMPLIANCE"
    #: ``path`` for most S3 look-alikes on a plain host:port; ``auto`` for AWS.
    addressing_style: str | None = None

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 profile: str | None = None, lock_mode: str = "COMPLIANCE",
                 addressing_style: str | None = None) -> StorageConfig:
        """The store ``edoc init --storage`` names: ``local`` (a directory inside the
        archive) or ``s3://BUCKET/PREFIX``. The S3 settings apply to an S3 URL only."""
        if url == "local":
            return cls()
        if not url.startswith("s3://"):
            raise ConfigError(f"--storage {url!r} is not local or s3://BUCKET/PREFIX",
                              code="USAGE_ERROR")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ConfigError(f"--storage {url} names no bucket", code="USAGE_ERROR")
        return cls(kind="s3", bucket=bucket, prefix=prefix.strip("/"),
                   endpoint_url=endpoint_url, region=region, profile=profile,
                   lock_mode=lock_mode, addressing_style=addressing_style)


@dataclass(frozen=True)
class TsaConfig:
    #: ``embedded``: edoc's own, NOT ACCREDITED TSA; ``http``: any RFC 3161 TSA by URL.
    kind: str = "embedded"
    url: str | None = None
    username: str | None = None
    password_env: str | None = None
    ca_file: str | None = None
    #: Extra trust roots (PEM) for an external TSA, e.g. an accredited TSA's CA.
    trust_roots: tuple[str, ...] = ()
    timeout: float = 10.0


@dataclass(frozen=True)
class ArchiveConfig:
    dir: Path
    archive_id: str
    organisation: str
    created: str
    default_profile: str = "general"
    #: Who keeps the records: ``corporation`` (法人) or ``individual`` (個人事業主). An
    #: edoc.toml without the key (every archive made before it existed) is a corporation.
    entity: str = "corporation"
    default_retention: tuple[str, ...] = ()
    fiscal_year_end: tuple[int, int] | None = None
    closed_annual: tuple[tuple[int, int], ...] = ()
    closed_days: tuple[date, ...] = ()
    policies_dir: str | None = None
    catalog_url: str = "sqlite:///catalog.sqlite"
    keys_dir: str = "keys"
    passphrase_env: str = "EDOC_KEY_PASSPHRASE"  # noqa: S105 (a variable name)
    #: ``file`` (PKCS#8 in keys/) or ``pkcs11`` (the seal key stays in a token)
    seal_backend: str = "file"
    pkcs11: TokenConfig | None = None
    storage: StorageConfig = field(default_factory=StorageConfig)
    tsa: TsaConfig = field(default_factory=TsaConfig)
    roles: RoleMap = field(default_factory=RoleMap)

    @property
    def keys_path(self) -> Path:
        return self.dir / self.keys_dir

    def passphrase(self) -> bytes | None:
        value = os.environ.get(self.passphrase_env)
        return value.encode() if value else None


def locate(archive: str | None) -> Path:
    """The archive directory from ``--archive``, ``EDOC_ARCHIVE`` or the current directory."""
    chosen = archive or os.environ.get(ENV_ARCHIVE) or "."
    path = Path(chosen).expanduser().resolve()
    if not (path / CONFIG_NAME).is_file():
        raise ConfigError(
            f"no archive at {path} ({CONFIG_NAME} not found)", code="ARCHIVE_NOT_FOUND",
            hint="create one with 'edoc init DIR', or point --archive / EDOC_ARCHIVE at it")
    return path


def parse_month_day(source: str, key: str, value: Any) -> tuple[int, int]:
    """``MM-DD`` (a fiscal-year end, an annual closed day) as (month, day)."""
    return _month_day(source, key, value)


def _month_day(source: str, key: str, value: Any) -> tuple[int, int]:
    try:
        month, day = (int(x) for x in str(value).split("-"))
        date(2024, month, day)  # a leap year, so 02-29 is accepted
    except ValueError:
        raise ConfigError(f"{source}: {key} must be MM-DD (got {value!r})",
                          code="CONFIG_INVALID") from None
    return month, day


def parse_entity(where: str, value: Any) -> str:
    """``corporation`` or ``individual`` (``edoc.policy.retention.ENTITY_TYPES``)."""
    from edoc.policy.retention import ENTITY_TYPES

    if value not in ENTITY_TYPES:
        raise ConfigError(f"{where} must be {' or '.join(ENTITY_TYPES)} (got {value!r})",
                          code="CONFIG_INVALID")
    return str(value)


def load(archive_dir: Path) -> ArchiveConfig:
    source = str(archive_dir / CONFIG_NAME)
    try:
        raw = tomllib.loads((archive_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source} cannot be read: {exc}", code="CONFIG_INVALID") from None
    try:
        a = raw["archive"]
        st = raw.get("storage", {})
        ts = raw.get("tsa", {})
        keys = raw.get("keys", {})
        closed_annual: list[tuple[int, int]] = []
        closed_days: list[date] = []
        for item in a.get("closed_days", []):
            text = str(item)
            if len(text) == 5:
                closed_annual.append(_month_day(source, "archive.closed_days", text))
            else:
                closed_days.append(date.fromisoformat(text))
        fye = a.get("fiscal_year_end")
        return ArchiveConfig(
            dir=archive_dir,
            archive_id=str(a["id"]),
            organisation=str(a.get("organisation", "")),
            created=str(a.get("created", "")),
            default_profile=str(a.get("default_profile", "general")),
            entity=parse_entity(f"{source}: archive.entity", a.get("entity", "corporation")),
            default_retention=tuple(a.get("default_retention", ())),
            fiscal_year_end=_month_day(source, "archive.fiscal_year_end", fye) if fye else None,
            closed_annual=tuple(closed_annual),
            closed_days=tuple(closed_days),
            policies_dir=a.get("policies_dir") or None,
            catalog_url=str(raw.get("catalog", {}).get("url", "sqlite:///catalog.sqlite")),
            keys_dir=str(keys.get("dir", "keys")),
            passphrase_env=str(keys.get("passphrase_env", "EDOC_KEY_PASSPHRASE")),
            seal_backend=str(keys.get("seal_backend", "file")),
            pkcs11=TokenConfig(module=str(keys["pkcs11_module"]),
                               token=str(keys["pkcs11_token"]),
                               key_label=str(keys.get("pkcs11_key_label", "edoc-seal")),
                               pin_env=str(keys.get("pkcs11_pin_env", "EDOC_PKCS11_PIN")))
            if keys.get("seal_backend") == "pkcs11" else None,
            storage=StorageConfig(
                kind=str(st.get("kind", "local")),
                path=str(st.get("path", "store")),
                bucket=str(st.get("bucket", "")),
                prefix=str(st.get("prefix", "")),
                endpoint_url=st.get("endpoint_url") or None,
                region=st.get("region") or None,
                profile=st.get("profile") or None,
                lock_mode=str(st.get("lock_mode", "COMPLIANCE")),
                addressing_style=st.get("addressing_style") or None,
            ),
            tsa=TsaConfig(
                kind=str(ts.get("kind", "embedded")),
                url=ts.get("url") or None,
                username=ts.get("username") or None,
                password_env=ts.get("password_env") or None,
                ca_file=ts.get("ca_file") or None,
                trust_roots=tuple(ts.get("trust_roots", ())),
                timeout=float(ts.get("timeout", 10.0)),
            ),
            roles=load_roles(raw, source),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: missing or invalid setting {exc}",
                          code="CONFIG_INVALID") from None


def _q(value: str) -> str:
    """A TOML basic string (json escaping is a subset TOML accepts)."""
    import json

    return json.dumps(value, ensure_ascii=False)


def _md(month_day: tuple[int, int]) -> str:
    return f"{month_day[0]:02d}-{month_day[1]:02d}"


def render(cfg: ArchiveConfig) -> str:
    """The text of a new ``edoc.toml`` (comments explain each setting to the operator)."""
    st = cfg.storage
    lines = [
        "# edoc archive configuration. Secrets are never stored here: name the environment",
        "# variable that holds them instead.",
        "",
        "[archive]",
        f"id = {_q(cfg.archive_id)}",
        f"organisation = {_q(cfg.organisation)}",
        f"created = {_q(cfg.created)}",
        f"default_profile = {_q(cfg.default_profile)}",
        "# Who keeps the records: corporation (法人) or individual (個人事業主); it picks the",
        "# base retention rule (corporate-tax / income-tax) of profiles that name one per entity.",
        f"entity = {_q(cfg.entity)}",
        "# Retention rules for every record besides its profiles' (e.g. [\"corporate-tax\"]).",
        f"default_retention = [{', '.join(_q(r) for r in cfg.default_retention)}]",
        "# Fiscal-year end (MM-DD) used when --fiscal-year-end is not given.",
        f"fiscal_year_end = {_q(_md(cfg.fiscal_year_end or (3, 31)))}",
        "# Company closed days for input deadlines: MM-DD every year, or YYYY-MM-DD once.",
        'closed_days = ["12-31", "01-02", "01-03"]',
        "# Extra profile directory (relative to this file); EDOC_POLICIES adds more.",
        'policies_dir = ""',
        "",
        "[catalog]",
        "# SQLAlchemy URL; relative sqlite paths are inside the archive directory. A shared",
        "# catalog: postgresql://USER@HOST:PORT/DB (password from PGPASSWORD or ~/.pgpass).",
        f"url = {_q(cfg.catalog_url)}",
        "",
        "[keys]",
        "# Development PKI (NOT ACCREDITED). Keys are encrypted when this variable is set at init.",
        f"dir = {_q(cfg.keys_dir)}",
        f"passphrase_env = {_q(cfg.passphrase_env)}",
        f"seal_backend = {_q(cfg.seal_backend)}",
        *([f"pkcs11_module = {_q(cfg.pkcs11.module)}",
           f"pkcs11_token = {_q(cfg.pkcs11.token)}",
           f"pkcs11_key_label = {_q(cfg.pkcs11.key_label)}",
           f"pkcs11_pin_env = {_q(cfg.pkcs11.pin_env)}  # the PIN itself never goes here"]
          if cfg.pkcs11 else []),
        "",
        "[storage]",
        f"kind = {_q(st.kind)}",
    ]
    if st.kind == "local":
        lines.append(f"path = {_q(st.path)}")
    else:
        lines += [f"bucket = {_q(st.bucket)}", f"prefix = {_q(st.prefix)}",
                  f"lock_mode = {_q(st.lock_mode)}",
                  "# endpoint_url / region / profile override the standard AWS settings.",
                  f"endpoint_url = {_q(st.endpoint_url or '')}",
                  f"region = {_q(st.region or '')}", f"profile = {_q(st.profile or '')}",
                  f"addressing_style = {_q(st.addressing_style or '')}",
                  "# Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE",
                  "# or ~/.aws — never from this file."]
    ts = cfg.tsa
    lines += [
        "",
        "[tsa]",
        "# embedded: edoc's own RFC 3161 TSA, NOT ACCREDITED (fine for trials and tests).",
        "# http: set url (and username, password_env, ca_file, trust_roots) for an accredited",
        "# 総務大臣認定 time-stamping service.",
        f"kind = {_q(ts.kind)}",
        f"url = {_q(ts.url or '')}",
        f"timeout = {ts.timeout}",
        "",
        "# [roles]  Who may do what (identity = EDOC_ACTOR or the OS user). Without this",
        "# table everyone is admin. Example:",
        "#   clerk = [\"hanako\"]",
        "#   auditor = [\"kansa\"]",
        "#   records-manager = [\"taro\"]",
        "#   admin = [\"root\"]",
        "#   default = []          # roles for unlisted identities ([] = refused)",
        "",
    ]
    return "\n".join(lines)


#: The catalog URL ``edoc init`` writes when ``--catalog`` is not given.
CATALOG_URL_ENV = "EDOC_CATALOG_URL"
DEFAULT_CATALOG_URL = "sqlite:///catalog.sqlite"


def catalog_url_for_init(explicit: str | None) -> str:
    """``--catalog``, else ``$EDOC_CATALOG_URL``, else the SQLite file in the archive. Only
    ``sqlite:`` and ``postgresql:`` (``postgres:``) URLs are catalogs edoc knows."""
    url = explicit or os.environ.get(CATALOG_URL_ENV) or DEFAULT_CATALOG_URL
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ConfigError(f"catalog url scheme {scheme!r} is not supported",
                          code="CONFIG_INVALID",
                          hint="use postgresql://USER@HOST/DB or sqlite:///catalog.sqlite")
    return url
