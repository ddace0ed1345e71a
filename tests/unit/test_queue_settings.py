"""Which database holds the job queue (edoc/queue/settings.py), and how failures are sorted
(edoc/queue/work.py ``is_transient``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edoc.config import ArchiveConfig
from edoc.errors import (
    ConfigError,
    DuplicateContent,
    InputError,
    ProfileViolation,
    StorageError,
    TimestampError,
)
from edoc.queue.settings import ENV_QUEUE_URL, libpq_url, queue_url
from edoc.queue.work import is_transient


def _cfg(tmp_path: Path, catalog_url: str, toml: str = "") -> ArchiveConfig:
    (tmp_path / "edoc.toml").write_text(toml, encoding="utf-8")
    return ArchiveConfig(dir=tmp_path, archive_id="a", organisation="o", created="c",
                         catalog_url=catalog_url)


def test_sqlalchemy_urls_become_libpq_urls() -> None:
    assert libpq_url("postgresql+psycopg://u@h:5/db") == "postgresql://u@h:5/db"
    assert libpq_url("postgres://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(ConfigError) as caught:
        libpq_url("sqlite:///catalog.sqlite")
    assert caught.value.code == "QUEUE_URL_INVALID"


def test_the_queue_defaults_to_the_postgresql_catalog(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_QUEUE_URL, raising=False)
    cfg = _cfg(tmp_path, "postgresql+psycopg://edoc@db/archive")
    assert queue_url(cfg) == "postgresql://edoc@db/archive"


def test_edoc_toml_then_the_environment_override(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_QUEUE_URL, raising=False)
    cfg = _cfg(tmp_path, "postgresql://edoc@db/archive",
               '[queue]\nurl = "postgresql://edoc@db/queue"\n')
    assert queue_url(cfg) == "postgresql://edoc@db/queue"
    monkeypatch.setenv(ENV_QUEUE_URL, "postgresql://other@elsewhere/q")
    assert queue_url(cfg) == "postgresql://other@elsewhere/q"


def test_a_sqlite_catalog_needs_a_queue_named(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_QUEUE_URL, raising=False)
    with pytest.raises(ConfigError) as caught:
        queue_url(_cfg(tmp_path, "sqlite:///catalog.sqlite"))
    assert caught.value.code == "QUEUE_NOT_CONFIGURED"


@pytest.mark.parametrize(("exc", "transient"), [
    (StorageError("store down"), True),
    (TimestampError("tsa down"), True),
    (ConnectionResetError(), True),
    (InputError("bad", code="BAD_DATE"), False),
    (ProfileViolation("dpi", code="RESOLUTION_TOO_LOW"), False),
    (DuplicateContent("dup"), False),
    (ConfigError("cfg"), False),
    (TypeError("a bug"), False),
])
def test_refusals_are_final_and_server_failures_retried(exc: BaseException,
                                                        transient: bool) -> None:
    assert is_transient(exc) is transient
