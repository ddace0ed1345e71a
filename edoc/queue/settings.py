"""Which PostgreSQL database holds the queue.

Order: ``EDOC_QUEUE_URL``; ``[queue] url`` in edoc.toml; the catalog's URL when the catalog is
PostgreSQL (one server to run, back up and secure). A SQLite catalog has no server workers on
other hosts could share, so a queue needs one of the first two there.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from edoc import config as config_mod
from edoc.config import ArchiveConfig
from edoc.errors import ConfigError

ENV_QUEUE_URL = "EDOC_QUEUE_URL"


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://…``) as the libpq URI psycopg takes."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ConfigError("the queue needs a PostgreSQL URL (postgresql://USER@HOST/DB), "
                          f"not {scheme or url!r}", code="QUEUE_URL_INVALID")
    return "postgresql://" + rest


def _configured(cfg: ArchiveConfig) -> str | None:
    path = Path(cfg.dir) / config_mod.CONFIG_NAME
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None  # config.load already read it; nothing more to say here
    section = raw.get("queue")
    if isinstance(section, dict) and section.get("url"):
        return str(section["url"])
    return None


def queue_url(cfg: ArchiveConfig) -> str:
    """The libpq URL of the queue database (no secret is logged: passwords belong in
    ``PGPASSWORD`` / ``~/.pgpass``, which libpq reads itself)."""
    url = os.environ.get(ENV_QUEUE_URL) or _configured(cfg)
    if url:
        return libpq_url(url)
    if cfg.catalog_url.split("+", 1)[0].split(":", 1)[0] in ("postgresql", "postgres"):
        return libpq_url(cfg.catalog_url)
    raise ConfigError("no job queue: the catalog is SQLite and no queue database is set",
                      code="QUEUE_NOT_CONFIGURED",
                      hint=f"use a PostgreSQL catalog, or set {ENV_QUEUE_URL} or "
                           "[queue] url in edoc.toml to a PostgreSQL database")
