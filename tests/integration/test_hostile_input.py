"""Hostile and malformed input through the real CLI (issue 7).

Every file of the corpus in ``tests/hostile.py`` is ingested with a good scan beside it, in
text and in ``--json`` mode, each run on its own copy of one initialised archive, and then
the whole corpus goes through one archive in one batch per profile. For each bad file: the
expected code, exit 1 (2 only for usage errors), one line on stderr and no traceback, exactly
one JSON document, nothing of it stored (catalog, ``store/objects/records``, ledger), while
the good files of the same run are stored and ``verify --all`` still passes.

Cases that fail because of bugs outside the files this suite owns are listed in
``KNOWN_BROKEN`` (empty now) and tested by ``xfail(strict=True)`` tests naming the fix.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Edoc, copy_archive, jst_today_minus
from tests.hostile import (
    ODD_NAMES,
    STORED,
    Hostile,
    ManifestCase,
    build_corpus,
    good_scan,
    manifest_corpus,
    name_cases,
    sparse_file,
)

#: Metadata every shipped profile used here accepts (meti-general requires date and
#: counterparty, nta-electronic-transaction also the amount).
META = ("--date", jst_today_minus(1), "--amount", "1000", "--counterparty", "山田商店")

#: Corpus cases whose right answer edoc does not give yet, and why (outside this suite).
KNOWN_BROKEN: dict[str, str] = {}
#: File names that are not UTF-8, and names that hold line breaks (each has its own test).
NON_UTF8 = {f"name-{ODD_NAMES.index(raw):02d}" for raw in (
    b"latin1-caf\xe9.png", b"\xff\xfe-not-utf8.png", b"sjis-\x90\xbf\x8b\x81\x8f\x91.png")}
LINE_BREAKS = {f"name-{ODD_NAMES.index(raw):02d}" for raw in (
    b"line\nbreak.png", b"carriage\rreturn.png")}
#: Cases answered right in JSON, but whose text-mode output breaks the one-line rule.
TEXT_LINES_BROKEN: dict[str, str] = {}


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Hostile]:
    return build_corpus(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised archive; each run gets a copy (init generates keys: too slow to repeat
    for every one of ~200 runs)."""
    e = Edoc(tmp_path_factory.mktemp("template") / "archive")
    res = e("init", str(e.archive), "--org", "敵対入力テスト株式会社")
    assert res.exit_code == 0, res.output
    return e.archive


@pytest.fixture
def fresh(template: Path, tmp_path: Path) -> Callable[[], Edoc]:
    numbers = count()

    def make() -> Edoc:
        target = tmp_path / f"archive-{next(numbers)}"
        copy_archive(template, target)
        return Edoc(target)

    return make


_seeds = count(10_000)


@pytest.fixture
def good(tmp_path: Path) -> Callable[[], Path]:
    """A new valid scan each call (distinct bytes: no duplicate refusals)."""
    folder = tmp_path / "good"
    folder.mkdir()

    def make() -> Path:
        seed = next(_seeds)
        return good_scan(folder / f"good-{seed}.png", seed)

    return make


# -- looking inside an archive ----------------------------------------------------------------

@dataclass(frozen=True)
class State:
    contents: tuple[str, ...]  # content SHA-256 of every stored version, sorted
    ledger: int
    records: tuple[str, ...]  # record directories in store/objects/records
    tmp: tuple[str, ...]  # uploads left in store/tmp

    @classmethod
    def of(cls, e: Edoc) -> State:
        db = e.db()
        try:
            contents = tuple(sorted(r[0] for r in db.execute(
                "SELECT content_sha256 FROM versions")))
            ledger = db.execute("SELECT count(*) FROM ledger").fetchone()[0]
        finally:
            db.close()
        records_dir = e.objects / "records"
        records = tuple(sorted(p.name for p in records_dir.iterdir())) \
            if records_dir.exists() else ()
        tmp_dir = e.archive / "store" / "tmp"
        tmp = tuple(p.name for p in tmp_dir.iterdir()) if tmp_dir.exists() else ()
        return cls(contents, ledger, records, tmp)


def sha256_of(path: Path) -> str | None:
    """The file's digest, or None when it is not a readable regular file."""
    try:
        if not path.is_file():
            return None
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def stored_delta(before: State, after: State, expected: list[Path]) -> list[str]:
    """Problems found comparing the archive before and after a run that should have stored
    exactly ``expected`` (and nothing else)."""
    problems = []
    new_contents = sorted(set(after.contents) - set(before.contents))
    want = sorted(d for d in (sha256_of(p) for p in expected) if d)
    if new_contents != want or len(after.contents) - len(before.contents) != len(expected):
        problems.append(f"stored contents {new_contents}, expected {want}")
    if after.ledger - before.ledger != len(expected):
        problems.append(f"ledger grew by {after.ledger - before.ledger}, expected "
                        f"{len(expected)}")
    if len(after.records) - len(before.records) != len(expected):
        problems.append(f"{len(after.records) - len(before.records)} new record directories, "
                        f"expected {len(expected)}")
    if after.tmp:
        problems.append(f"uploads left behind in store/tmp: {after.tmp}")
    return problems


def manifest_of(e: Edoc, record_id: str) -> dict[str, Any]:
    code, doc = e.json("show", record_id)
    assert code == 0, doc
    manifest: dict[str, Any] = doc["versions"][-1]
    return manifest


def one_json(stdout: str) -> dict[str, Any]:
    """Exactly one JSON document (json.loads refuses trailing data)."""
    doc = json.loads(stdout)
    assert isinstance(doc, dict)
    return doc


def manifest_problems(e: Edoc, case: Hostile, record_id: str) -> list[str]:
    """What the stored manifest of an accepted hostile file must say."""
    m = manifest_of(e, record_id)
    content, readability = m["content"], m["readability"]
    problems = []
    if case.media_type and content["media_type"] != case.media_type:
        problems.append(f"media type {content['media_type']}, expected {case.media_type}")
    kept = os.fsencode(case.path.name).decode("utf-8", "backslashreplace")
    if content["original_name"] != kept:
        problems.append(f"original_name {content['original_name']!r} != {kept!r}")
    if case.active and not set(case.active) <= set(readability.get("active_content", [])):
        problems.append(f"active content {readability.get('active_content')}, expected "
                        f"{case.active} reported")
    if case.unmeasured and (readability.get("measured") is not False
                            or readability.get("error") != case.unmeasured):
        problems.append(f"readability {readability}, expected unmeasured {case.unmeasured}")
    if case.pages is not None and readability.get("pages") != case.pages:
        problems.append(f"pages {readability.get('pages')}, expected {case.pages}")
    return problems


# -- one bad file next to one good one ----------------------------------------------------------

GROUPS = ("image", "bomb", "pdf", "cyclic", "active", "special", "name")


def check_alone(case: Hostile, fresh: Callable[[], Edoc], good: Callable[[], Path]
                ) -> list[str]:
    """Run ``case`` with a good scan, in text and JSON mode; every problem found, as text."""
    problems: list[str] = []
    bad_sha = sha256_of(case.path)
    stored = [case.path] if case.stored else []

    # Text mode: one line per rejected file on stderr, one per stored record on stdout.
    e, ok = fresh(), good()
    before = State.of(e)
    res = e("ingest", str(case.path), str(ok), "--profile", case.profile, *META)
    after = State.of(e)
    want_exit = 0 if case.stored else 1
    if res.exit_code != want_exit:
        problems.append(f"text: exit {res.exit_code}, expected {want_exit}: {res.output!r}")
    if "Traceback" in res.output:
        problems.append("text: a traceback was printed")
    # Both files carry the same typed fields (META), so whichever is stored second is rightly
    # a DUPLICATE_SUSPECT of the first (issue 16: same counterparty, date and amount, other
    # bytes); a file whose text cannot be read (an encrypted PDF) says TEXT_NOT_DERIVED.
    # Those are warnings about the pair and the text index, not about the hostile file's
    # handling, so they are set aside here; every other line is still checked.
    err_lines = [ln for ln in res.stderr.splitlines()
                 if not (ln.startswith("warning: ") and
                         (": DUPLICATE_SUSPECT: " in ln or ": TEXT_NOT_DERIVED: " in ln))]
    if case.stored:
        if len(err_lines) != 1 or not err_lines[0].startswith("2 stored"):
            problems.append(f"text: stderr {err_lines!r}, expected the summary line only")
        if case.case not in TEXT_LINES_BROKEN and len(res.stdout.splitlines()) != 2:
            problems.append(f"text: stdout {res.stdout!r}, expected one line per record")
    else:
        rejected = [ln for ln in err_lines if ln.startswith("rejected: ")]
        if len(err_lines) != 2 or len(rejected) != 1 or f": {case.expect}: " not in rejected[0]:
            problems.append(f"text: stderr {err_lines!r}, expected one 'rejected: …: "
                            f"{case.expect}: …' line and the summary")
        if res.stdout.count("\n") != 1:
            problems.append(f"text: stdout {res.stdout!r}, expected the good record only")
    problems += [f"text: {p}" for p in stored_delta(before, after, [*stored, ok])]
    if bad_sha and not case.stored and bad_sha in after.contents:
        problems.append("text: the bad file's bytes are in the archive")

    # JSON mode, on another copy: exactly one document, the code in the result.
    e, ok = fresh(), good()
    before = State.of(e)
    res = e("ingest", str(case.path), str(ok), "--profile", case.profile, *META, "--json")
    after = State.of(e)
    try:
        doc = one_json(res.stdout)
    except (ValueError, AssertionError) as exc:
        return [*problems, f"json: not exactly one JSON document ({exc}): {res.stdout!r}"]
    if res.exit_code != want_exit or doc.get("ok") is not case.stored:
        problems.append(f"json: exit {res.exit_code}, ok {doc.get('ok')}")
    if res.stderr:
        problems.append(f"json: stderr {res.stderr!r}, expected nothing")
    results = doc.get("results") or []
    if len(results) != 2 or results[1].get("status") != "stored":
        return [*problems, f"json: results {results}, expected the bad file then a stored one"]
    first = results[0]
    if case.stored:
        if first["status"] != STORED:
            problems.append(f"json: {first['status']} {first['error']}, expected stored")
        else:
            problems += [f"manifest: {p}" for p in manifest_problems(e, case,
                                                                     first["record_id"])]
    elif first["status"] != "rejected" or (first["error"] or {}).get("code") != case.expect:
        problems.append(f"json: {first['status']} {first['error']}, expected {case.expect}")
    else:
        message = first["error"]["message"]
        if "\n" in message or "\r" in message:
            problems.append(f"json: message spans lines: {message!r}")
    problems += [f"json: {p}" for p in stored_delta(before, after, [*stored, ok])]
    return problems


@pytest.mark.parametrize("group", GROUPS)
def test_each_bad_file_next_to_a_good_one(group: str, corpus: list[Hostile],
                                          fresh: Callable[[], Edoc],
                                          good: Callable[[], Path]) -> None:
    cases = [c for c in corpus if c.group == group and c.case not in KNOWN_BROKEN]
    assert cases
    failures = {c.case: p for c in cases if (p := check_alone(c, fresh, good))}
    assert not failures, "\n".join(f"{case} ({next(c for c in cases if c.case == case).why}): "
                                   f"{'; '.join(p)}" for case, p in failures.items())


# -- the whole corpus in one archive -----------------------------------------------------------

def test_whole_corpus_in_one_batch_per_profile(corpus: list[Hostile], template: Path,
                                               tmp_path: Path, good: Callable[[], Path]
                                               ) -> None:
    e = Edoc(tmp_path / "archive")
    copy_archive(template, e.archive)
    cases = [c for c in corpus if c.case not in KNOWN_BROKEN]
    tried = 0
    for profile in sorted({c.profile for c in cases}):
        mine = [c for c in cases if c.profile == profile]
        goods = [good(), good(), good()]
        # Good files first, in the middle and last: one bad file must not stop the batch.
        bad = [c.path for c in mine]
        files = [goods[0], *bad[: len(bad) // 2], goods[1], *bad[len(bad) // 2:], goods[2]]
        before = State.of(e)
        res = e("ingest", *map(str, files), "--profile", profile, *META, "--json")
        doc = one_json(res.stdout)
        assert res.exit_code == (0 if all(c.stored for c in mine) else 1), doc
        results = doc["results"]
        # JSON carries names as given; bytes that are not UTF-8 as \xNN
        assert [r["file"] for r in results] == [
            os.fsencode(f).decode("utf-8", "backslashreplace") for f in files]
        by_file = dict(zip(map(str, files), results, strict=True))
        for ok in goods:
            assert by_file[str(ok)]["status"] == "stored", by_file[str(ok)]
        wrong = {c.case: by_file[str(c.path)] for c in mine
                 if (by_file[str(c.path)]["status"] if c.stored
                     else (by_file[str(c.path)]["error"] or {}).get("code")) != c.expect}
        assert not wrong, json.dumps(wrong, ensure_ascii=False, indent=1)
        problems = stored_delta(before, State.of(e), [*goods, *(c.path for c in mine
                                                                if c.stored)])
        assert not problems, problems
        tried += len(mine)
    assert tried == len(cases) >= 60

    code, report = e.json("verify", "--all")
    assert code == 0, [r for r in report["reports"] if r["status"] != "pass"]
    stored_count = sum(c.stored for c in cases) + 3 * len({c.profile for c in cases})
    assert report["summary"]["pass"] == stored_count
    code, found = e.json("search")
    assert found["count"] == stored_count


def test_a_real_process_prints_one_line_per_rejected_file(corpus: list[Hostile],
                                                          template: Path, tmp_path: Path
                                                          ) -> None:
    """In-process runs cannot see what C libraries write to file descriptor 2 themselves
    (libtiff does, on damaged data): the general-profile corpus once more, through
    ``python -m edoc`` in a real process."""
    archive = tmp_path / "archive"
    copy_archive(template, archive)
    cases = [c for c in corpus if c.profile == "general" and c.case not in KNOWN_BROKEN
             and c.case not in TEXT_LINES_BROKEN]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "edoc", "--archive", str(archive), "ingest",
         "--profile", "general", "--", *(str(c.path) for c in cases)],
        capture_output=True, text=True, cwd=root, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    rejected = [c for c in cases if not c.stored]
    assert len(lines) == len(rejected) + 1, proc.stderr
    for case, line in zip(rejected, lines, strict=False):
        assert line.startswith(f"rejected: {case.path}: {case.expect}: "), (case.case, line)
    assert lines[-1].startswith(f"{len(cases) - len(rejected)} stored, ")
    assert len(proc.stdout.splitlines()) == len(cases) - len(rejected)


# -- names ------------------------------------------------------------------------------------

def test_names_that_are_not_utf8_are_stored_and_reported(tmp_path: Path,
                                                         fresh: Callable[[], Edoc]) -> None:
    cases = [c for c in name_cases(tmp_path) if c.case in NON_UTF8]
    assert len(cases) == 3
    e = fresh()
    code, doc = e.json("ingest", *(str(c.path) for c in cases), "--profile", "general")
    assert code == 0, doc
    for case, result in zip(cases, doc["results"], strict=True):
        assert result["status"] == "stored"
        name = manifest_of(e, result["record_id"])["content"]["original_name"]
        assert name == os.fsencode(case.path.name).decode("utf-8", "backslashreplace")
    res = e("ingest", *(str(c.path) for c in cases), "--profile", "general")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert len(res.stderr.splitlines()) == 4  # three duplicates and the summary


def test_names_with_line_breaks_print_on_one_line(tmp_path: Path,
                                                  fresh: Callable[[], Edoc]) -> None:
    cases = [c for c in name_cases(tmp_path) if c.case in LINE_BREAKS]
    assert len(cases) == 2
    e = fresh()
    res = e("ingest", *(str(c.path) for c in cases), "--profile", "general")
    assert res.exit_code == 0
    assert len(res.stdout.splitlines()) == 2, res.stdout
    res = e("ingest", *(str(c.path) for c in cases), "--profile", "general")
    assert res.exit_code == 1
    assert len(res.stderr.splitlines()) == 3, res.stderr  # two duplicates and the summary


# -- usage errors: exit 2 ---------------------------------------------------------------------

@pytest.mark.parametrize(("args", "code"), [
    ((), "USAGE_ERROR"),
    (("--manifest", "{csv}", "{png}"), "USAGE_ERROR"),
    (("{png}", "--profile", "no-such-profile"), "PROFILE_UNKNOWN"),
    (("{png}", "--profile", "../../etc/passwd"), "PROFILE_UNKNOWN"),
    (("-starts-with-dash.png",), "USAGE_ERROR"),
    (("{png}", "--amount"), "USAGE_ERROR"),
])
def test_usage_errors_exit_2_with_one_document(args: tuple[str, ...], code: str,
                                               fresh: Callable[[], Edoc],
                                               good: Callable[[], Path], tmp_path: Path
                                               ) -> None:
    e = fresh()
    (tmp_path / "m.csv").write_text("file\nx.png\n")
    argv = [a.format(png=good(), csv=tmp_path / "m.csv") for a in args]
    before = State.of(e)
    res = e("ingest", "--json", *argv)
    assert res.exit_code == 2, res.output
    assert one_json(res.stdout)["error"]["code"] == code
    res = e("ingest", *argv)
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    errors = [ln for ln in res.stderr.splitlines() if not ln.startswith("hint: ")]
    assert len(errors) == 1 and code in errors[0], res.stderr
    assert stored_delta(before, State.of(e), []) == []


def test_a_name_starting_with_a_dash_after_double_dash(tmp_path: Path,
                                                       fresh: Callable[[], Edoc]) -> None:
    path = good_scan(tmp_path / "-starts-with-dash.png", 77)
    e = fresh()
    res = e("ingest", "--profile", "general", "--json", "--", str(path))
    assert res.exit_code == 0, res.output
    assert one_json(res.stdout)["results"][0]["status"] == "stored"


# -- CSV manifests ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> list[ManifestCase]:
    return manifest_corpus(tmp_path_factory.mktemp("manifests") / "inbox")


def check_manifest(case: ManifestCase, fresh: Callable[[], Edoc], *, text_rows: bool = False
                   ) -> list[str]:
    """Problems of one bad manifest, in JSON and text mode; the text-mode lines of rejected
    rows only with ``text_rows`` (see ``_ROWS_SILENT``)."""
    problems: list[str] = []
    e = fresh()
    before = State.of(e)
    res = e("ingest", "--manifest", str(case.path), "--profile", "general", "--json")
    try:
        doc = one_json(res.stdout)
    except (ValueError, AssertionError) as exc:
        return [f"json: not one document ({exc}): {res.stdout!r}"]
    if res.exit_code != 1 or doc.get("ok") is not False:
        problems.append(f"json: exit {res.exit_code}, ok {doc.get('ok')}")
    if case.level == "manifest":
        if (doc.get("error") or {}).get("code") != case.expect:
            problems.append(f"json: {doc.get('error')}, expected {case.expect}")
    else:
        results = doc.get("results") or []
        bad = [r for r in results if r["status"] == "rejected"]
        codes = {(r["error"] or {}).get("code") for r in bad}
        if codes != {case.expect} or len(bad) != len(case.bad_rows):
            problems.append(f"json: rejected {[(r['file'], r['error']) for r in bad]}, "
                            f"expected {case.expect} for rows {case.bad_rows}")
        for n, r in zip(case.bad_rows, bad, strict=False):
            if f"row {n}" not in r["error"]["message"]:
                problems.append(f"json: {r['error']['message']!r} does not name row {n}")
        others = {r["status"] for r in results if r["status"] != "rejected"}
        if others - {"not-stored"}:
            problems.append(f"json: other rows {others}, expected not-stored (all or nothing)")
    problems += [f"json: {p}" for p in stored_delta(before, State.of(e), [])]
    for named in case.files:
        digest = sha256_of(named)
        if digest in State.of(e).contents:
            problems.append(f"{named.name} was stored")

    res = e("ingest", "--manifest", str(case.path), "--profile", "general")
    if res.exit_code != 1 or "Traceback" in res.output:
        problems.append(f"text: exit {res.exit_code}: {res.output!r}")
    lines = [ln for ln in res.stderr.splitlines() if not ln.startswith("hint: ")]
    flagged = [ln for ln in lines if f"{case.expect}: " in ln]
    if case.level == "manifest" and (len(lines) != 1 or len(flagged) != 1):
        problems.append(f"text: stderr {res.stderr!r}, expected one error line")
    if text_rows and case.level == "row" and len(flagged) != len(case.bad_rows):
        problems.append(f"text: stderr {res.stderr!r}, expected one line per bad row")
    problems += [f"text: {p}" for p in stored_delta(before, State.of(e), [])]
    return problems


def test_bad_manifests(manifests: list[ManifestCase], fresh: Callable[[], Edoc]) -> None:
    assert len(manifests) >= 20
    failures = {c.case: p for c in manifests if (p := check_manifest(c, fresh))}
    assert not failures, "\n".join(f"{case}: {'; '.join(p)}" for case, p in failures.items())


def test_rejected_manifest_rows_are_named_on_stderr(manifests: list[ManifestCase],
                                                    fresh: Callable[[], Edoc]) -> None:
    rows = [c for c in manifests if c.level == "row"]
    failures = {c.case: p for c in rows if (p := check_manifest(c, fresh, text_rows=True))}
    assert not failures, "\n".join(f"{case}: {'; '.join(p)}" for case, p in failures.items())


def test_a_good_manifest_next_to_the_bad_ones_is_stored(manifests: list[ManifestCase],
                                                        fresh: Callable[[], Edoc]) -> None:
    """The manifests' good rows are fine on their own: the refusals above were the bad rows."""
    inbox = manifests[0].path.parent
    ok = inbox / "all-good.csv"
    ok.write_text("file,counterparty,amount,date\n" + "".join(
        f"ok-{n}.png,山田商店,{1000 + n},2024-04-0{n + 1}\n" for n in range(3)), "utf-8")
    e = fresh()
    code, doc = e.json("ingest", "--manifest", str(ok), "--profile", "general")
    assert code == 0, doc
    assert doc["stored"] == 3


# -- formulas in CSV output -------------------------------------------------------------------

FORMULAS = ('=HYPERLINK("http://x")', "@SUM(1)", "+1+2", "-2+3", "=cmd|' /C calc'!A0")


def test_search_csv_neutralises_formulas(fresh: Callable[[], Edoc],
                                         good: Callable[[], Path]) -> None:
    e = fresh()
    for n, text in enumerate(FORMULAS):
        code, doc = e.json("ingest", str(good()), "--profile", "general",
                           "--counterparty", text, "--ledger-ref", f"=JV-{n}",
                           "--amount", str(100 + n))
        assert code == 0, doc  # stored as text: a counterparty may be any name
    res = e("search", "--csv")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == len(FORMULAS)
    by_amount = {int(r["amount"]): r for r in rows}
    for n, text in enumerate(FORMULAS):
        row = by_amount[100 + n]
        assert row["counterparty"] == "'" + text  # shown as text by spreadsheets
        assert row["ledger_ref"] == f"'=JV-{n}"
    # JSON is data, not a spreadsheet: the values stay exactly as given.
    code, found = e.json("search")
    assert sorted(r["counterparty"] for r in found["records"]) == sorted(FORMULAS)


# -- a 2 GiB file with bounded memory -----------------------------------------------------------

RSS_LIMIT_MB = 300


def test_two_gib_sparse_file_is_stored_with_bounded_memory(tmp_path: Path,
                                                           template: Path) -> None:
    archive = tmp_path / "archive"
    copy_archive(template, archive)
    big = sparse_file(tmp_path / "big.bin")
    # A fresh interpreter between pytest and edoc, so that RUSAGE_CHILDREN sees edoc alone
    # (pytest's own earlier children would otherwise count).
    measure = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'edoc', '--archive', sys.argv[1], "
        "'ingest', sys.argv[2], '--profile', 'general', '--json'], capture_output=True, "
        "text=True)\n"
        "print(p.returncode); print(p.stdout); print(p.stderr, file=sys.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    )
    root = Path(__file__).resolve().parents[2]
    try:
        proc = subprocess.run([sys.executable, "-c", measure, str(archive), str(big)],
                              capture_output=True, text=True, cwd=root, timeout=300)
        returncode, _, stdout = proc.stdout.partition("\n")
        peak_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024  # ru_maxrss is in KiB
        doc = one_json(stdout)
        assert returncode == "0", (doc, proc.stderr)
        (result,) = doc["results"]
        assert result["status"] == "stored"
        assert result["sha256"] == _sha256_of_zeros(2 * 1024**3)
        stored = archive / "store" / "objects" / "records" / result["record_id"] / "v1"
        assert (stored / "content").stat().st_size == 2 * 1024**3
        media = json.loads((stored / "manifest.json").read_bytes())["content"]["media_type"]
        assert media == "application/octet-stream"
        assert peak_mb < RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"
    finally:
        shutil.rmtree(archive, ignore_errors=True)  # 2 GiB of real blocks in the store
        big.unlink(missing_ok=True)


def _sha256_of_zeros(size: int) -> str:
    h = hashlib.sha256()
    block = bytes(1024 * 1024)
    for _ in range(size // len(block)):
        h.update(block)
    return h.hexdigest()


def test_corpus_is_large_and_each_case_says_why(corpus: list[Hostile],
                                                manifests: list[ManifestCase]) -> None:
    assert len(corpus) + len(manifests) >= 60
    assert len({c.case for c in corpus}) == len(corpus)
    for case in corpus:
        assert case.why and case.expect, case
        assert case.expect == STORED or case.expect.isupper()


def test_no_line_is_lost_while_libtiff_output_is_caught(tmp_path: Path, template: Path
                                                          ) -> None:
    """While a TIFF is decoded, fd 2 points at a temporary file (libtiff writes there behind
    Python's back); with files in flight the main thread prints rejections meanwhile, and
    each must still reach stderr: edoc writes its own lines to a duplicate of fd 2."""
    archive = tmp_path / "archive"
    copy_archive(template, archive)
    files: list[Path] = []
    for i in range(60):
        files.append(good_scan(tmp_path / f"scan-{i}.tif", seed=1000 + i, fmt="TIFF"))
        empty = tmp_path / f"empty-{i}.pdf"
        empty.touch()
        files.append(empty)
    proc = subprocess.run(
        [sys.executable, "-m", "edoc", "--archive", str(archive), "ingest", "--jobs", "4",
         "--profile", "general", "--", *map(str, files)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert proc.returncode == 1, proc.stderr
    rejected = [line for line in proc.stderr.splitlines() if line.startswith("rejected: ")]
    assert len(rejected) == 60, proc.stderr
    assert all(": FILE_EMPTY: " in line for line in rejected), rejected
    assert proc.stderr.splitlines()[-1].startswith("60 stored, ")


_EMBEDDING_PROGRAM = """
import sys, threading, time, warnings
# pyHanko's import of cryptography's deprecated DSA classes warns on stderr, mid-line of
# the host's output whenever the import falls inside the run (the CLI silences it; a host
# program decides for itself). The test is about edoc's handling of fd 2, not that warning.
warnings.filterwarnings("ignore", message="DSA is deprecated")
from edoc.services.archive import Archive
from edoc.services.ingest import IngestRequest, Ingestor

archive, *files = sys.argv[1:]
stop = threading.Event()

def chatter() -> None:
    n = 0
    while not stop.is_set():
        print(f"host line {n}", file=sys.stderr, flush=True)
        n += 1
        time.sleep(0.0005)
    print(f"host total {n}", file=sys.stderr, flush=True)

thread = threading.Thread(target=chatter)
thread.start()
try:
    run = Ingestor(Archive.open(archive), jobs=4).run(
        [IngestRequest(path=f, profiles=("general",)) for f in files])
finally:
    stop.set()
    thread.join()
print(sum(r.status == "stored" for r in run.results))
"""


def test_a_program_embedding_edoc_keeps_its_stderr_while_tiffs_are_decoded(
        tmp_path: Path, template: Path) -> None:
    """A program using the library (its ``sys.stderr`` on fd 2 itself) prints from its own
    thread while edoc decodes TIFFs with files in flight: edoc leaves fd 2 alone then, so
    not one of the program's lines is lost (the CLI case is the test above)."""
    archive = tmp_path / "archive"
    copy_archive(template, archive)
    files = [good_scan(tmp_path / f"scan-{i}.tif", seed=2000 + i, fmt="TIFF") for i in range(40)]
    proc = subprocess.run(
        [sys.executable, "-c", _EMBEDDING_PROGRAM, str(archive), *map(str, files)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "40"
    lines = [line for line in proc.stderr.splitlines() if line.startswith("host ")]
    total = int(lines[-1].removeprefix("host total "))
    assert total > 0
    assert lines[:-1] == [f"host line {n}" for n in range(total)]
