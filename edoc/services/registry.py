"""The NTA register of qualified invoice issuers, offline: import it, ask it.

Owns ``edoc registry import`` / ``status`` / ``lookup`` and ``registration_status``, the
question ingest asks of an invoice's 登録番号: was this issuer a 適格請求書発行事業者 on the
invoice's date? (消費税法 第57条の2: registration; 第57条の4: a qualified invoice carries the
number; 仕入税額控除 needs an issuer registered on the date of the transaction.) The
answer comes from the National Tax Agency's publication site (適格請求書発行事業者公表サイト),
whose full-data download (全件データ) is imported here; no network.

The file (the NTA's 公表情報ダウンロード仕様, CSV): UTF-8, a BOM accepted, **no header
row**, 24 columns — sequenceNumber, registratedNumber, process, correct, kind, country,
latest, registrationDate, updateDate, disposalDate, expireDate, address,
addressPrefectureCode, addressCityCode, addressRequest, addressRequestPrefectureCode,
addressRequestCityCode, kana, name, addressInside, addressInsidePrefectureCode,
addressInsideCityCode, tradeName, popularName_previousName. Codes: process 01 新規 (new),
02 変更 (changed), 03 失効 (expired), 04 取消 (cancelled), 99 削除 (deleted: never
registered as far as a lookup is concerned); correct 0/1 (1: a correction); kind 1 個人
(individual), 2 法人 (corporation); latest 1 (the newest row of a number) / 0 (history).

What is kept (personal-data minimisation, 個人情報保護法 第18条/第19条 — only what the purpose
needs): the number, name, trade name, kind, process, correct, latest, the four dates and the
sequence number; the head-office ``address`` for corporations (kind 2) only — a corporation's
address is public registry data, an individual's is personal information, so for kind 1 no
address column is kept at all (nor addressRequest / addressInside, kana or the popular or
previous name for anyone).

Import is all or nothing: every row is checked (column count, number shape, codes, dates);
one bad row and nothing is stored — the error lists the first 10 with file and line and counts
them all. A valid import replaces the previous register whole, in one transaction
(``edoc.catalog.registry``), and an import whose as-of date is older than the one held is
refused unless forced. The files are read twice: once to hash them (the digests recorded),
once to parse; a file changed in between is the operator's doing, not a race edoc guards.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final, Literal

from edoc import clock
from edoc.catalog import Catalog
from edoc.catalog.registry import (
    HeldRegister,
    RegisterEntry,
    RegisterFile,
    held_register,
    lookup_entry,
    replacing_register,
)
from edoc.errors import InputError
from edoc.evidence.hashing import hash_file
from edoc.policy.business_days import jst_date
from edoc.policy.registration import normalise_registration_number
from edoc.services.archive import Archive

__all__ = [
    "REGISTRATION_EXPIRED", "REGISTRATION_NOT_CHECKED", "REGISTRATION_NOT_FOUND",
    "REGISTRATION_OK", "HeldRegister", "ImportSummary", "RegisterFile",
    "RegisterMalformed", "RegistrationStatus", "held", "import_register", "lookup",
    "parse_numbers", "registration_status",
]

REGISTRATION_OK: Final = "OK"
REGISTRATION_NOT_FOUND: Final = "REGISTRATION_NOT_FOUND"
REGISTRATION_EXPIRED: Final = "REGISTRATION_EXPIRED"
#: No register was imported: the number was not checked (``checked`` is False).
REGISTRATION_NOT_CHECKED: Final = "REGISTRATION_NOT_CHECKED"
StatusCode = Literal["OK", "REGISTRATION_NOT_FOUND", "REGISTRATION_EXPIRED",
                     "REGISTRATION_NOT_CHECKED"]
Kind = Literal["individual", "corporation"]

COLUMNS: Final = 24
PROCESS: Final = {"01": "new", "02": "changed", "03": "expired", "04": "cancelled",
                  "99": "deleted"}
KIND: Final[dict[int, Kind]] = {1: "individual", 2: "corporation"}
#: rows handed to the catalog per executemany
BATCH: Final = 10_000
#: malformed rows named in the error (all are counted)
SHOWN_PROBLEMS: Final = 10
#: ``import registry`` needs this role beyond the group's (``edoc.policy.roles``)
IMPORT_COMMAND: Final = "registry import"

_NUMBER = re.compile(r"T[0-9]{13}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SEQ = re.compile(r"[0-9]{1,18}")
_ZERO_ONE = frozenset({"0", "1"})
_KINDS = frozenset({"1", "2"})
# Column positions in the NTA file (0-based), named for the loop below.
(_SEQ_I, _NUM_I, _PROC_I, _CORR_I, _KIND_I, _LATEST_I, _REG_I, _UPD_I, _DISP_I, _EXP_I,
 _ADDR_I, _NAME_I, _TRADE_I) = (0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 18, 22)
_DATE_COLUMNS: Final = ((_REG_I, "registrationDate"), (_UPD_I, "updateDate"),
                        (_DISP_I, "disposalDate"), (_EXP_I, "expireDate"))


class RegisterMalformed(InputError):
    """Rows of the files are not the NTA format; nothing was stored."""

    code = "REGISTRY_MALFORMED"

    def __init__(self, problems: Sequence[str], count: int) -> None:
        shown = "; ".join(problems)
        more = f" (and {count - len(problems)} more)" if count > len(problems) else ""
        super().__init__(f"{count} malformed row(s), nothing stored: {shown}{more}",
                         hint="the files must be the NTA 全件データ CSV (24 columns, no "
                              "header); download them again")
        self.problems = tuple(problems)
        self.count = count

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "problems": list(self.problems), "count": self.count}


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    """Whether ``number`` was a registered qualified invoice issuer on ``on``.

    ``checked`` is False when no register was imported (then ``registered`` is False and
    ``code`` is ``REGISTRATION_NOT_CHECKED``: unknown, not a failure). ``code``: ``OK``;
    ``REGISTRATION_NOT_FOUND`` (not in the register, not yet registered on ``on``, deleted
    (99), or not a well-formed number); ``REGISTRATION_EXPIRED`` (its registration ended —
    cancelled or expired — on or before ``on``). ``registered_name`` / ``kind`` are the
    register's, whenever the number is in it."""

    number: str
    on: date
    checked: bool
    registered: bool
    code: StatusCode
    registered_name: str | None = None
    trade_name: str | None = None
    kind: Kind | None = None
    process: str | None = None
    registration_date: date | None = None
    #: the day the registration ended (disposalDate, else expireDate), if it has
    ended: date | None = None
    register_as_of: date | None = None


@dataclass(frozen=True, slots=True)
class ImportSummary:
    register: HeldRegister
    #: the as-of date of the register this import replaced (None: there was none)
    replaced: str | None


def held(archive: Archive) -> HeldRegister | None:
    """The register held (``edoc registry status``), or None."""
    return held_register(archive.catalog)


def lookup(archive: Archive, numbers: Iterable[str], on: date | None = None
           ) -> list[RegistrationStatus]:
    """``registration_status`` of each number a clerk typed (``edoc registry lookup``), on
    ``on`` (default: today in Japan); a value that is no registration number is refused."""
    day = on if on is not None else jst_date(clock.now())
    return [registration_status(archive.catalog, n, day) for n in parse_numbers(numbers)]


def registration_status(catalog: Catalog, number: str, on: date) -> RegistrationStatus:
    """Ask the imported register about ``number`` on ``on`` (one index search).

    The number's latest=1 row decides; its dates answer for ``on``: registered from
    registrationDate, until the day its registration ended — disposalDate (cancelled,
    取消) or expireDate (失効) — which is itself no longer registered
    (``ended <= on`` → ``REGISTRATION_EXPIRED``)."""
    norm = normalise_registration_number(number)
    entry: RegisterEntry | None = None
    if _NUMBER.fullmatch(norm) is None:  # no register holds it: only "checked?" to answer
        held_reg = held_register(catalog)
    else:
        entry, held_reg = lookup_entry(catalog, norm)
    if held_reg is None:
        return RegistrationStatus(norm, on, checked=False, registered=False,
                                  code=REGISTRATION_NOT_CHECKED)
    as_of = date.fromisoformat(held_reg.as_of)
    if entry is None:
        return RegistrationStatus(norm, on, checked=True, registered=False,
                                  code=REGISTRATION_NOT_FOUND, register_as_of=as_of)
    return _judge(entry, norm, on, as_of)


def _judge(entry: RegisterEntry, number: str, on: date, as_of: date) -> RegistrationStatus:
    registered_on = _day(entry.registration_date)
    ends = [d for d in (_day(entry.disposal_date), _day(entry.expire_date)) if d is not None]
    ended = min(ends) if ends else None
    code: StatusCode
    if entry.process == "99" or registered_on is None or registered_on > on:
        code = REGISTRATION_NOT_FOUND
    elif ended is not None and ended <= on:
        code = REGISTRATION_EXPIRED
    else:
        code = REGISTRATION_OK
    return RegistrationStatus(
        number, on, checked=True, registered=code == REGISTRATION_OK, code=code,
        registered_name=entry.name, trade_name=entry.trade_name, kind=KIND.get(entry.kind),
        process=PROCESS.get(entry.process), registration_date=registered_on, ended=ended,
        register_as_of=as_of)


def _day(text: str | None) -> date | None:
    return None if not text else date.fromisoformat(text)


# -- import ---------------------------------------------------------------------------------

def import_register(archive: Archive, files: Sequence[Path], *, as_of: date | None = None,
                    force: bool = False) -> ImportSummary:
    """Replace the held register with the one in ``files`` (all or nothing).

    ``as_of``: the register's date; default the newest updateDate in the files. Refused
    (``REGISTRY_OLDER``) when older than the register held, unless ``force``."""
    archive.cfg.roles.authorize(archive.actor, IMPORT_COMMAND)
    if not files:
        raise InputError("no register file given", code="REGISTRY_NO_FILES")
    digests = []
    for path in files:
        try:
            digests.append(hash_file(path))
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}",
                             code="REGISTRY_FILE_UNREADABLE") from None
    problems: list[str] = []
    count = 0
    newest_update = ""
    read: list[RegisterFile] = []
    with replacing_register(archive.catalog) as load:
        previous = load.held
        if as_of is not None:
            _refuse_older(as_of.isoformat(), previous, force)
        batch: list[tuple[Any, ...]] = []
        for path, digest in zip(files, digests, strict=True):
            rows_in_file = 0
            for line, fault, row in _rows(path):
                if fault is not None:
                    count += 1
                    if len(problems) < SHOWN_PROBLEMS:
                        problems.append(f"{path.name}:{line}: {fault}")
                    continue
                rows_in_file += 1
                if count:
                    continue  # already failed: check the rest only to count its problems
                if row[7] is not None and row[7] > newest_update:
                    newest_update = row[7]
                batch.append(row)
                if len(batch) >= BATCH:
                    load.add(batch)
                    batch = []
            read.append(RegisterFile(str(path), digest.sha256, digest.size, rows_in_file))
        if count:
            raise RegisterMalformed(problems, count)
        load.add(batch)
        if load.rows == 0:
            raise InputError("the register files hold no rows; nothing stored",
                             code="REGISTRY_EMPTY")
        if as_of is None:
            if not newest_update:
                raise InputError("no row has an updateDate to date the register by",
                                 code="REGISTRY_AS_OF_UNKNOWN", hint="give --as-of YYYY-MM-DD")
            as_of_text = newest_update
            _refuse_older(as_of_text, previous, force)
        else:
            as_of_text = as_of.isoformat()
        register = load.finish(as_of=as_of_text, imported_at=clock.utc_text(clock.now()),
                               actor=archive.actor, files=read)
    return ImportSummary(register, None if previous is None else previous.as_of)


def _refuse_older(as_of: str, previous: HeldRegister | None, force: bool) -> None:
    if previous is not None and as_of < previous.as_of and not force:
        raise InputError(f"the register in these files is as of {as_of}, older than the one "
                         f"held (as of {previous.as_of}); nothing stored",
                         code="REGISTRY_OLDER", hint="use --force to go back to it")


def _rows(path: Path) -> Iterator[tuple[int, str | None, tuple[Any, ...]]]:
    """(line, problem or None, row tuple in ``ENTRY_COLUMNS`` order) for each data row."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            yield from _checked(csv.reader(f))
    except OSError as exc:
        yield 0, f"cannot read: {exc.strerror}", ()


def _checked(reader: Any) -> Iterator[tuple[int, str | None, tuple[Any, ...]]]:
    # The hot loop of a million-row import: plain tuples, set lookups, one regex per number;
    # a date string is parsed once (good_dates caches those that are real dates).
    number_ok = _NUMBER.fullmatch
    good_dates: set[str] = {""}
    try:
        for fields in reader:
            if not fields:
                continue  # a blank line
            line: int = reader.line_num
            if len(fields) != COLUMNS:
                yield line, f"{len(fields)} columns, not {COLUMNS}", ()
                continue
            fault = _fault(fields, number_ok, good_dates)
            if fault is not None:
                yield line, fault, ()
                continue
            kind = fields[_KIND_I]
            yield line, None, (
                int(fields[_SEQ_I]), fields[_NUM_I], fields[_PROC_I], int(fields[_CORR_I]),
                int(kind), int(fields[_LATEST_I]),
                fields[_REG_I] or None, fields[_UPD_I] or None, fields[_DISP_I] or None,
                fields[_EXP_I] or None, fields[_NAME_I] or None, fields[_TRADE_I] or None,
                (fields[_ADDR_I] or None) if kind == "2" else None)
    except UnicodeDecodeError:
        yield reader.line_num + 1, "not UTF-8 text", ()
    except csv.Error as exc:
        yield reader.line_num, f"not CSV ({exc})", ()


def _fault(fields: list[str], number_ok: Any, good_dates: set[str]) -> str | None:
    """What is wrong with a row of the right length, or None."""
    number, seq = fields[_NUM_I], fields[_SEQ_I]
    if number_ok(number) is None:
        return f"registratedNumber {number[:20]!r} is not T and 13 digits"
    if _SEQ.fullmatch(seq) is None:
        return f"sequenceNumber {seq[:20]!r} is not a number"
    process, kind = fields[_PROC_I], fields[_KIND_I]
    if process not in PROCESS:
        return f"process {process[:8]!r} is not 01, 02, 03, 04 or 99"
    if kind not in _KINDS:
        return f"kind {kind[:8]!r} is not 1 or 2"
    latest, correct = fields[_LATEST_I], fields[_CORR_I]
    if latest not in _ZERO_ONE or correct not in _ZERO_ONE:
        return f"latest/correct {latest[:8]!r}/{correct[:8]!r} is not 0 or 1"
    for i, column in _DATE_COLUMNS:
        text = fields[i]
        if text not in good_dates:
            if not _is_date(text):
                return f"{column} {text[:20]!r} is not a date YYYY-MM-DD"
            good_dates.add(text)
    return None


def _is_date(text: str) -> bool:
    if _DATE.fullmatch(text) is None:
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def parse_numbers(values: Iterable[str]) -> list[str]:
    """The numbers a clerk typed, normalised (full-width ``Ｔ１２…`` accepted); a value that
    is no registration number is refused (``REGISTRATION_NUMBER_INVALID``)."""
    out = []
    for value in values:
        norm = normalise_registration_number(value)
        if _NUMBER.fullmatch(norm) is None:
            raise InputError(f"{value[:40]!r} is not a registration number (T and 13 digits)",
                             code="REGISTRATION_NUMBER_INVALID")
        out.append(norm)
    return out
