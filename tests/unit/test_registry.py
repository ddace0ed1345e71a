"""The NTA invoice-issuer register, offline (edoc.services.registry, edoc.catalog.registry).

Pinned here: the 全件データ rows (new, changed, expired, cancelled, deleted, history rows, a
BOM) answer "registered on D?" from the latest row's dates, with the boundaries exact
(registered on D, ended on D, ended D+1); no register means "not checked"; a malformed row
stores nothing and is named with its file and line; a re-import replaces the register whole;
an older import is refused unless forced; individuals' addresses are never stored; a lookup
is one search of the number index (EXPLAIN QUERY PLAN).
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.dialects import sqlite

from edoc.catalog.registry import LOOKUP_ENTRY
from edoc.errors import ConfigError, EdocError
from edoc.services.archive import Archive, init_archive
from edoc.services.registry import (
    REGISTRATION_EXPIRED,
    REGISTRATION_NOT_CHECKED,
    REGISTRATION_NOT_FOUND,
    REGISTRATION_OK,
    RegisterMalformed,
    held,
    import_register,
    lookup,
    registration_status,
)

NEW = "T1234567890123"
CHANGED = "T2234567890123"
EXPIRED = "T3234567890123"
CANCELLED = "T4234567890123"
DELETED = "T5234567890123"
PERSON = "T6234567890123"
ABSENT = "T9999999999999"


def row(seq: int, number: str, process: str = "01", *, kind: str = "2", latest: str = "1",
        reg: str = "2023-10-01", upd: str = "2023-10-01", disposal: str = "",
        expire: str = "", name: str = "株式会社サンプル", address: str = "東京都千代田区1-1",
        trade: str = "", correct: str = "0") -> list[str]:
    """One 24-column 全件データ row."""
    return [str(seq), number, process, correct, kind, "1", latest, reg, upd, disposal, expire,
            address, "13", "101", "", "", "", "カナ", name, "", "", "", trade, ""]


def write(path: Path, rows: Sequence[Sequence[str]], *, bom: bool = True) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_text(("\ufeff" if bom else "") + buf.getvalue(), encoding="utf-8")
    return path


REGISTER = [
    row(1, NEW),
    # history: the old name (latest=0), then the change (latest=1)
    row(2, CHANGED, name="旧商号株式会社", latest="0"),
    row(3, CHANGED, "02", name="新商号株式会社", upd="2024-04-01"),
    row(4, EXPIRED, "03", reg="2023-10-01", upd="2024-06-30", expire="2024-06-30"),
    row(5, CANCELLED, "04", upd="2024-09-01", disposal="2024-09-01"),
    row(6, DELETED, "99", upd="2024-10-01"),
    row(7, PERSON, kind="1", name="山田太郎", address="東京都港区秘密1-2-3", trade="山田商店",
        reg="2024-01-15", upd="2024-01-15"),
]


@pytest.fixture()
def archive(tmp_path: Path) -> Iterator[Archive]:
    a = init_archive(tmp_path / "archive", organisation="registry test")
    yield a
    a.close()


@pytest.fixture()
def imported(archive: Archive, tmp_path: Path) -> Archive:
    import_register(archive, [write(tmp_path / "zenken.csv", REGISTER)])
    return archive


def status(a: Archive, number: str, on: str) -> str:
    return registration_status(a.catalog, number, date.fromisoformat(on)).code


def test_without_a_register_nothing_is_checked(archive: Archive) -> None:
    s = registration_status(archive.catalog, NEW, date(2024, 1, 1))
    assert (s.checked, s.registered, s.code) == (False, False, REGISTRATION_NOT_CHECKED)
    assert s.register_as_of is None
    assert held(archive) is None


def test_codes_of_each_process(imported: Archive) -> None:
    on = "2025-01-01"
    assert status(imported, NEW, on) == REGISTRATION_OK
    assert status(imported, CHANGED, on) == REGISTRATION_OK
    assert status(imported, EXPIRED, on) == REGISTRATION_EXPIRED
    assert status(imported, CANCELLED, on) == REGISTRATION_EXPIRED
    assert status(imported, DELETED, on) == REGISTRATION_NOT_FOUND
    assert status(imported, ABSENT, on) == REGISTRATION_NOT_FOUND
    assert status(imported, "not a number", on) == REGISTRATION_NOT_FOUND


def test_status_fields(imported: Archive) -> None:
    s = registration_status(imported.catalog, "Ｔ２２３４５６７８９０１２３", date(2025, 1, 1))
    assert s.number == CHANGED and s.checked and s.registered
    assert s.registered_name == "新商号株式会社"  # the latest=1 row, not the history row
    assert (s.kind, s.process) == ("corporation", "changed")
    assert s.register_as_of == date(2024, 10, 1)  # the newest updateDate
    p = registration_status(imported.catalog, PERSON, date(2025, 1, 1))
    assert (p.kind, p.registered_name, p.trade_name) == ("individual", "山田太郎", "山田商店")


@pytest.mark.parametrize(("number", "on", "code"), [
    (NEW, "2023-09-30", REGISTRATION_NOT_FOUND),  # the day before registration
    (NEW, "2023-10-01", REGISTRATION_OK),  # registered on D
    (EXPIRED, "2024-06-29", REGISTRATION_OK),  # expires D+1: still registered on D
    (EXPIRED, "2024-06-30", REGISTRATION_EXPIRED),  # expired on D
    (CANCELLED, "2024-08-31", REGISTRATION_OK),
    (CANCELLED, "2024-09-01", REGISTRATION_EXPIRED),  # cancelled on D
    (PERSON, "2024-01-14", REGISTRATION_NOT_FOUND),
    (PERSON, "2024-01-15", REGISTRATION_OK),
])
def test_date_boundaries(imported: Archive, number: str, on: str, code: str) -> None:
    assert status(imported, number, on) == code


def test_no_address_of_an_individual_is_stored(imported: Archive) -> None:
    with sqlite3.connect(imported.cfg.dir / "catalog.sqlite") as db:
        addresses = dict(db.execute("SELECT number, address FROM registry_entries").fetchall())
        dumped = "\n".join(db.iterdump())
    assert addresses[PERSON] is None
    assert addresses[NEW] == "東京都千代田区1-1"
    assert "秘密" not in dumped


def test_status_of_the_held_register(imported: Archive, tmp_path: Path) -> None:
    reg = held(imported)
    assert reg is not None
    assert (reg.as_of, reg.rows, reg.numbers) == ("2024-10-01", 7, 6)
    (f,) = reg.files
    import hashlib

    assert f.sha256 == hashlib.sha256((tmp_path / "zenken.csv").read_bytes()).hexdigest()
    assert f.rows == 7


def test_a_file_without_bom_is_read_too(archive: Archive, tmp_path: Path) -> None:
    import_register(archive, [write(tmp_path / "a.csv", REGISTER, bom=False)])
    assert status(archive, NEW, "2024-01-01") == REGISTRATION_OK


def test_a_malformed_row_stores_nothing(imported: Archive, tmp_path: Path) -> None:
    bad = [row(1, NEW, upd="2025-01-01"), row(2, CHANGED)[:23], row(3, "T123"),
           row(4, EXPIRED, reg="2024-02-30"), row(5, CANCELLED, "05"),
           *[row(10 + i, NEW)[:5] for i in range(12)]]
    with pytest.raises(RegisterMalformed) as err:
        import_register(imported, [write(tmp_path / "good.csv", REGISTER),
                                   write(tmp_path / "bad.csv", bad)], as_of=date(2025, 1, 1))
    assert err.value.code == "REGISTRY_MALFORMED" and err.value.count == 16
    assert len(err.value.problems) == 10
    assert err.value.problems[0] == "bad.csv:2: 23 columns, not 24"
    assert err.value.problems[1].startswith("bad.csv:3: registratedNumber 'T123'")
    assert err.value.problems[2].startswith("bad.csv:4: registrationDate '2024-02-30'")
    assert err.value.problems[3].startswith("bad.csv:5: process '05'")
    assert err.value.as_dict()["count"] == 16
    # the register held before is untouched
    reg = held(imported)
    assert reg is not None and (reg.as_of, reg.rows) == ("2024-10-01", 7)
    assert status(imported, DELETED, "2025-01-01") == REGISTRATION_NOT_FOUND
    assert status(imported, NEW, "2025-01-01") == REGISTRATION_OK


def test_a_malformed_first_import_leaves_no_register(archive: Archive, tmp_path: Path) -> None:
    with pytest.raises(RegisterMalformed):
        import_register(archive, [write(tmp_path / "bad.csv", [row(1, NEW), ["1", "2"]])])
    assert held(archive) is None
    assert not registration_status(archive.catalog, NEW, date(2024, 1, 1)).checked


def test_reimport_replaces_the_register(imported: Archive, tmp_path: Path) -> None:
    newer = [row(1, ABSENT, reg="2024-12-01", upd="2024-12-01")]
    done = import_register(imported, [write(tmp_path / "new.csv", newer)])
    assert done.replaced == "2024-10-01"
    assert (done.register.as_of, done.register.rows) == ("2024-12-01", 1)
    assert status(imported, ABSENT, "2025-01-01") == REGISTRATION_OK
    assert status(imported, NEW, "2025-01-01") == REGISTRATION_NOT_FOUND


def test_an_older_import_is_refused_unless_forced(imported: Archive, tmp_path: Path) -> None:
    older = write(tmp_path / "old.csv", [row(1, ABSENT, upd="2024-01-01")])
    with pytest.raises(EdocError) as err:
        import_register(imported, [older])
    assert err.value.code == "REGISTRY_OLDER"
    with pytest.raises(EdocError) as err:  # an explicit older --as-of, too
        import_register(imported, [older], as_of=date(2024, 5, 1))
    assert err.value.code == "REGISTRY_OLDER"
    assert status(imported, NEW, "2025-01-01") == REGISTRATION_OK  # nothing changed
    done = import_register(imported, [older], force=True)
    assert done.register.as_of == "2024-01-01"
    assert status(imported, NEW, "2025-01-01") == REGISTRATION_NOT_FOUND


def test_as_of_option_wins(archive: Archive, tmp_path: Path) -> None:
    done = import_register(archive, [write(tmp_path / "a.csv", REGISTER)],
                           as_of=date(2024, 11, 30))
    assert done.register.as_of == "2024-11-30"


def test_empty_and_undated_files_are_refused(archive: Archive, tmp_path: Path) -> None:
    with pytest.raises(EdocError) as err:
        import_register(archive, [write(tmp_path / "empty.csv", [])])
    assert err.value.code == "REGISTRY_EMPTY"
    with pytest.raises(EdocError) as err:
        import_register(archive, [write(tmp_path / "u.csv", [row(1, NEW, upd="")])])
    assert err.value.code == "REGISTRY_AS_OF_UNKNOWN"
    assert held(archive) is None


def test_not_utf8_is_malformed(archive: Archive, tmp_path: Path) -> None:
    p = tmp_path / "sjis.csv"
    p.write_bytes(",".join(row(1, NEW)).encode("cp932") + b"\r\n")
    with pytest.raises(RegisterMalformed) as err:
        import_register(archive, [p])
    assert "not UTF-8" in err.value.problems[0]


def test_lookup_refuses_what_is_no_number(imported: Archive) -> None:
    with pytest.raises(EdocError) as err:
        lookup(imported, ["T12"], date(2025, 1, 1))
    assert err.value.code == "REGISTRATION_NUMBER_INVALID"
    (s,) = lookup(imported, [NEW])  # today in Japan
    assert s.code == REGISTRATION_OK


def test_import_needs_a_records_manager(archive: Archive, tmp_path: Path) -> None:
    from dataclasses import replace

    from edoc.policy.roles import RoleMap

    archive.cfg = replace(archive.cfg, roles=RoleMap({"hanako": frozenset({"clerk"}),
                                                      "taro": frozenset({"records-manager"})}))
    archive.actor = "hanako"
    f = write(tmp_path / "a.csv", REGISTER)
    with pytest.raises(ConfigError) as err:
        import_register(archive, [f])
    assert err.value.code == "ROLE_REQUIRED"
    archive.actor = "taro"
    import_register(archive, [f])


def test_lookup_is_one_index_search(imported: Archive) -> None:
    sql = str(LOOKUP_ENTRY.compile(dialect=sqlite.dialect()))
    with sqlite3.connect(imported.cfg.dir / "catalog.sqlite") as db:
        plan = [r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", (NEW, 1, 0))]
    assert len(plan) == 1, plan
    assert plan[0].startswith("SEARCH registry_entries USING INDEX ix_registry_number "
                              "(number=?)"), plan


def test_an_older_catalog_gets_the_tables(archive: Archive) -> None:
    path = archive.cfg.dir / "catalog.sqlite"
    archive.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE registry_entries")
        db.execute("DROP TABLE registry_imports")
    again = Archive.open(str(archive.cfg.dir))
    try:
        assert not registration_status(again.catalog, NEW, date(2024, 1, 1)).checked
        with again.catalog.transaction():  # the first write upgrades
            pass
        with sqlite3.connect(path) as db:
            names = {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
        assert {"registry_entries", "registry_imports", "ix_registry_number"} <= names
    finally:
        again.close()
