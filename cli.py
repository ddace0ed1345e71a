"""The ``edoc`` command line: parse, call the library, render. The only module importing click.

Contract (scripts and batch jobs depend on it): exit 0 success, 1 the subject failed (a file
rejected, a check failed), 2 usage or configuration error. With ``--json`` exactly one JSON
document goes to stdout, also on failure (``{"ok": false, "error": {...}}``). Progress and
logs go to stderr. Errors are one line with a code; tracebacks only in the debug log.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

import edoc.warnings_policy  # noqa: F401  (the CLI does not show pyHanko's DSA warning)
from edoc import clock
from edoc.errors import ConfigError, EdocError

F = TypeVar("F", bound=Callable[..., Any])
JSON_FLAG = "--json"


# -- output helpers -------------------------------------------------------------------------

def _json_mode() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get("edoc.json"))


def emit_json(doc: dict[str, Any]) -> None:
    click.echo(json.dumps(doc, ensure_ascii=False, indent=2, default=str))


def info(msg: str) -> None:
    click.echo(msg, err=True)


def write_csv(rows: Iterator[Sequence[Any]], header: Sequence[str]) -> None:
    from edoc.services.spreadsheet import neutralise

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    if header:
        w.writerow(header)
    for row in rows:
        w.writerow([neutralise(v) for v in row])
    click.echo(buf.getvalue(), nl=False)


def _debug_log_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edoc" / "debug.log"


def fail(exc: EdocError) -> NoReturn:
    if _json_mode():
        emit_json({"ok": False, "error": exc.as_dict()})
    else:
        click.echo(f"error: {exc}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


def _open(archive_opt: str | None) -> Any:
    from edoc.services.archive import Archive

    return Archive.open(archive_opt)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print exactly one JSON document on stdout.")(f)


class EdocGroup(click.Group):
    """Routes every error through one place: EdocError and click usage errors alike."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Remember --json before parsing, so even a usage error answers in JSON.
        ctx.meta["edoc.json"] = JSON_FLAG in args
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.Exit:
            raise
        except click.ClickException as exc:
            with ctx:
                fail(ConfigError(exc.format_message(), code="USAGE_ERROR",
                                 hint="see 'edoc --help'"))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdocError as exc:
            fail(exc)
        except click.exceptions.Exit:
            raise
        except click.ClickException as exc:
            fail(ConfigError(exc.format_message(), code="USAGE_ERROR",
                             hint="see 'edoc COMMAND --help'"))
        except KeyboardInterrupt:
            fail(EdocError("interrupted", code="INTERRUPTED"))
        except Exception as exc:
            path = _debug_log_path()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as f:
                    f.write(f"--- {clock.now().isoformat()} {sys.argv[1:2]}\n")
                    f.write(traceback.format_exc())
            except OSError:
                path = Path("(debug log not writable)")
            if os.environ.get("EDOC_DEBUG"):
                traceback.print_exc()
            fail(EdocError(f"internal error ({type(exc).__name__}); details in {path}",
                           code="INTERNAL_ERROR", hint="please report this with the log"))


@click.group(cls=EdocGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--archive", "archive", envvar="EDOC_ARCHIVE", metavar="DIR",
              help="Archive directory (default: EDOC_ARCHIVE or the current directory).")
@click.option("--debug", is_flag=True, help="Log details to stderr.")
@click.version_option(package_name="edoc")
@click.pass_context
def cli(ctx: click.Context, archive: str | None, debug: bool) -> None:
    """edoc — e-document retention archive (電子帳簿保存法 / e-文書法).

    Documents are hashed, sealed (CAdES), RFC 3161 timestamped and stored write-once.
    """
    ctx.obj = {"archive": archive}
    if debug or os.environ.get("EDOC_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)


SIGNING_COMMANDS = {"ingest", "correct", "delete", "hold", "release", "purge", "renew",
                    "retention", "doctor"}
SIGNING_COMMANDS.add("confirm")  # edoc confirm writes a sealed version


def _ensure_passphrase(a: Any) -> None:
    """Encrypted keys and no passphrase in the environment: ask, if a person is there.
    The passphrase stays in this process (never echoed, logged or written)."""
    env = a.cfg.passphrase_env
    if os.environ.get(env):
        return
    seal_key = a.cfg.keys_path / "seal.key"
    try:
        encrypted = b"ENCRYPTED" in seal_key.read_bytes()
    except OSError:
        return
    if encrypted and sys.stdin.isatty():
        os.environ[env] = click.prompt("key passphrase", hide_input=True, err=True)


def _archive(ctx: click.Context) -> Any:
    a = _open(ctx.obj["archive"])
    ctx.find_root().call_on_close(a.release)  # the catalog's connections end with it
    # The top-level command name decides (e.g. "ledger" for "ledger verify").
    command = ctx.command_path.split()[1] if len(ctx.command_path.split()) > 1 else ""
    a.cfg.roles.authorize(a.actor, command)
    if command in SIGNING_COMMANDS:
        _ensure_passphrase(a)
    return a


# -- init ------------------------------------------------------------------------------------

@cli.command()
@click.argument("directory", required=False, default=".")
@click.option("--organisation", "--org", default="", help="Your organisation's name.")
@click.option("--fiscal-year-end", "fye", default=None, metavar="MM-DD",
              help="Fiscal-year end used when a record gives none (default 03-31; 12-31 "
              "for --entity individual).")
@click.option("--entity", default="corporation", metavar="corporation|individual",
              help="Who keeps the records: a corporation (法人, default) or an individual "
              "(個人事業主); picks the base retention rule (corporate-tax / income-tax).")
@click.option("--retention", "retention", multiple=True, metavar="RULE",
              help="Retention rules for every record, e.g. corporate-tax (repeatable).")
@click.option("--storage", default="local", metavar="local|s3://BUCKET/PREFIX",
              help="Object store (default: a local directory inside the archive).")
@click.option("--catalog", "catalog", metavar="URL", default=None,
              help="Catalog database: postgresql://USER@HOST/DB for a shared catalog "
                   "(default: $EDOC_CATALOG_URL, else SQLite in DIR).")
@click.option("--s3-endpoint-url", metavar="URL",
              help="S3 endpoint (else AWS_ENDPOINT_URL_S3 / AWS config).")
@click.option("--s3-region", metavar="REGION")
@click.option("--s3-profile", metavar="NAME", help="AWS profile name (credentials).")
@click.option("--s3-addressing-style", type=click.Choice(["auto", "path", "virtual"]))
@click.option("--lock-mode", type=click.Choice(["COMPLIANCE", "GOVERNANCE"]),
              default="COMPLIANCE", show_default=True, help="S3 Object Lock mode.")
@click.option("--encrypt-keys", is_flag=True,
              help="Encrypt private keys with a passphrase (EDOC_KEY_PASSPHRASE, or asked).")
@click.option("--pkcs11-module", metavar="PATH",
              help="Keep the seal key in a PKCS#11 token (e.g. an HSM); module path.")
@click.option("--pkcs11-token", metavar="LABEL", help="Token label.")
@click.option("--pkcs11-key-label", default="edoc-seal", show_default=True)
@click.option("--pkcs11-pin-env", default="EDOC_PKCS11_PIN", show_default=True,
              help="Environment variable holding the user PIN.")
@json_option
def init(directory: str, organisation: str, fye: str | None, entity: str,
         retention: tuple[str, ...],
         storage: str, s3_endpoint_url: str | None, s3_region: str | None,
         s3_profile: str | None, s3_addressing_style: str | None, lock_mode: str,
         encrypt_keys: bool, pkcs11_module: str | None, pkcs11_token: str | None,
         pkcs11_key_label: str, pkcs11_pin_env: str, as_json: bool,
         catalog: str | None = None) -> None:
    """Create an archive in DIRECTORY with the embedded defaults.

    Local write-once store, SQLite catalog, and a development PKI and TSA that are
    NOT ACCREDITED (use an accredited TSA for real evidence; see README).
    """
    from edoc.config import StorageConfig
    from edoc.services.setup import Pkcs11Request, check_retention_rules, create_archive

    check_retention_rules(retention)
    if encrypt_keys and not os.environ.get("EDOC_KEY_PASSPHRASE"):
        if not sys.stdin.isatty():
            raise ConfigError("--encrypt-keys needs EDOC_KEY_PASSPHRASE (no terminal to ask)",
                              code="KEY_PASSPHRASE_REQUIRED")
        os.environ["EDOC_KEY_PASSPHRASE"] = click.prompt(
            "new key passphrase", hide_input=True, confirmation_prompt=True, err=True)
    store_cfg = StorageConfig.from_url(storage, endpoint_url=s3_endpoint_url,
                                       region=s3_region, profile=s3_profile,
                                       lock_mode=lock_mode,
                                       addressing_style=s3_addressing_style)
    a = create_archive(Path(directory), organisation=organisation, fiscal_year_end=fye,
                       default_retention=retention, storage=store_cfg,
                       pkcs11=Pkcs11Request(pkcs11_module, pkcs11_token, pkcs11_key_label,
                                            pkcs11_pin_env), entity=entity,
                       catalog=catalog)
    doc = {"ok": True, "archive": str(a.directory), "archive_id": a.archive_id,
           "entity": a.entity, "base_retention_rule": a.base_rule, "catalog": a.catalog_kind,
           "storage": a.storage_kind, "guarantee": a.storage_guarantee,
           "tsa": "embedded (NOT ACCREDITED)", "pki": "development (NOT ACCREDITED)"}
    if as_json:
        emit_json(doc)
        return
    click.echo(f"created archive {a.directory}")
    info(f"  entity:  {a.entity} — base retention rule {a.base_rule}")
    info(f"  storage: {a.storage_kind} — {a.storage_guarantee}")
    info(f"  catalog: {a.catalog_kind}")
    info("  keys:    development PKI — NOT ACCREDITED")
    info("  tsa:     embedded RFC 3161 TSA — NOT ACCREDITED")
    info("  next:    edoc --archive " + str(a.directory) + " ingest FILE --profile general")


# -- shared options --------------------------------------------------------------------------

def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


metadata_options = _options(
    click.option("--doc-type", help="invoice, receipt, contract, delivery-note, quote, …"),
    click.option("--date", "tx_date", metavar="YYYY-MM-DD", help="Transaction date."),
    click.option("--amount", help="Amount in whole yen (10800, ¥10,800; -5000 or ▲5,000 "
                 "for a return or correction)."),
    click.option("--counterparty", help="取引先 (counterparty) name."),
    click.option("--ledger-ref", help="Voucher / journal reference linking to the books."),
    click.option("--author", help="Author (required by some profiles, e.g. mhlw-medical)."),
    click.option("--paper-size", help="Paper size for scans without dpi metadata (A4, B5, …)."),
)

retention_options = _options(
    click.option("--retention", "retention", multiple=True, metavar="RULE",
                 help="Retention rule (repeatable): corporate-tax, income-tax, …"),
    click.option("--fiscal-year-end", metavar="YYYY-MM-DD"),
    click.option("--extension-months", metavar="N"),
    click.option("--loss-year", is_flag=True, help="欠損金 year: corporate-tax keeps 10 years."),
    click.option("--tax-year", metavar="YYYY"),
    click.option("--period-end", metavar="YYYY-MM-DD", help="Consumption-tax period end."),
    click.option("--closing-date", metavar="YYYY-MM-DD", help="Book closing (Companies Act)."),
    click.option("--completed", metavar="YYYY-MM-DD", help="Completion event date."),
)


def _request(path: str, profiles: tuple[str, ...], opts: dict[str, Any]) -> Any:
    from edoc.services.ingest import IngestRequest

    return IngestRequest(
        path=path, profiles=profiles, doc_type=opts.get("doc_type"), date=opts.get("tx_date"),
        amount=opts.get("amount"), counterparty=opts.get("counterparty"),
        ledger_ref=opts.get("ledger_ref"), received=opts.get("received"),
        author=opts.get("author"), paper_size=opts.get("paper_size"),
        retention=opts.get("retention", ()), fiscal_year_end=opts.get("fiscal_year_end"),
        extension_months=opts.get("extension_months"), loss_year=opts.get("loss_year", False),
        tax_year=opts.get("tax_year"), period_end=opts.get("period_end"),
        closing_date=opts.get("closing_date"), completed=opts.get("completed"),
        direction=opts.get("direction"),
        registration_number=opts.get("registration_number"), ocr=opts.get("ocr", False))


# -- ingest ----------------------------------------------------------------------------------

@cli.command()
@click.argument("files", nargs=-1)
@click.option("--profile", "profiles", multiple=True, metavar="ID",
              help="Ordinance profile (repeatable; the strictest rule wins).")
@click.option("--manifest", "manifest_csv", metavar="FILE.csv",
              help="CSV with one row per file (column 'file' plus the option names).")
@metadata_options
@click.option("--received", metavar="YYYY-MM-DD", help="Date the document was received.")
@click.option("--direction", type=click.Choice(["received", "sent"]),
              help="For an e-invoice: received (default; counterparty = the issuer) or sent.")
@retention_options
@click.option("--registration-number", metavar="T…",
              help="The issuer's registration number (登録番号, T + 13 digits) of a "
                   "record that is not an e-invoice; searchable.")
@click.option("--ocr", is_flag=True,
              help="Read the text of images and image-only PDFs by OCR for search --text "
                   "(slow: seconds a page); the PDF text layer is always read.")
@click.option("--suggest", is_flag=True,
              help="On a terminal: read each file (e-invoice, PDF text, OCR, file name), "
                   "show the suggested fields; Enter accepts, typed text corrects.")
@click.option("--skip-existing", is_flag=True,
              help="A file already in the archive (same SHA-256) counts as done, not as a "
                   "duplicate: for re-running a batch after a failure.")
@click.option("--jobs", type=click.IntRange(min=1, max=64), metavar="N",
              help="Files in flight at once (default: 8 on S3; on a local store 4, or one "
                   "per worker process). Results are reported in the order given either way.")
@click.option("--processes", type=click.IntRange(min=1, max=16), metavar="N",
              help="Worker processes sharing the files (default 1): more cores for a large "
                   "batch on a host with more than two. A CSV manifest runs in one process.")
@click.option("--enqueue", is_flag=True,
              help="Put one job per document on the PostgreSQL job queue instead; "
                   "'edoc worker' on any host ingests them (FILES may name directories).")
@json_option
@click.pass_context
def ingest(ctx: click.Context, /, files: tuple[str, ...], profiles: tuple[str, ...],
           manifest_csv: str | None, skip_existing: bool, jobs: int | None,
           processes: int | None, as_json: bool, enqueue: bool = False, **opts: Any) -> None:
    """Ingest FILES: check, hash, seal, timestamp and store them write-once.

    Exit 0 when every file was stored, 1 when any was rejected (the rest still are).
    """
    from edoc.policy.values import printable_name
    from edoc.services.ingest import Ingestor, default_jobs

    if not files and not manifest_csv:
        raise ConfigError("no files given", code="USAGE_ERROR",
                          hint="edoc ingest FILE... --profile ID (or --manifest FILE.csv)")
    if files and manifest_csv:
        raise ConfigError("give files or --manifest, not both", code="USAGE_ERROR")
    if opts.get("suggest") and manifest_csv:
        raise ConfigError("--suggest reads FILES; a review CSV already holds suggestions",
                          code="USAGE_ERROR")
    a = _archive(ctx)
    if enqueue:
        _ingest_enqueue(a, files, profiles, manifest_csv, skip_existing, as_json, opts)
    if manifest_csv:
        from edoc.services.manifest_csv import read_manifest

        requests = read_manifest(Path(manifest_csv), default_profiles=profiles)
        if opts.get("ocr"):  # --ocr applies to every row (a row OCR suggested has it anyway)
            from dataclasses import replace

            requests = [replace(r, ocr=True) for r in requests]
    else:
        requests = [_request(f, profiles, opts) for f in files]
        if opts.get("suggest"):
            requests = _suggested_requests(requests, jobs)
    # Unknown profiles are a usage error for the whole run, not a per-file rejection.
    for pid in {p for r in requests if r.rejection is None
                for p in (r.profiles or (a.cfg.default_profile,))}:
        a.profiles.get(pid)
    tty = sys.stderr.isatty() and not as_json
    total = len(requests)
    done = [0]

    def progress(r: Any) -> None:
        done[0] += 1
        name = printable_name(r.file)  # a file name must not forge lines or escapes
        if r.status not in ("stored", "exists") and not as_json:
            info(f"{r.status}: {name}: {r.error['code']}: {r.error['message']}")
        elif tty:
            info(f"[{done[0]}/{total}] stored {name} -> {r.record_id}")

    # A CSV manifest is all-or-nothing at validation: every row is checked before any is
    # stored, which one process does.
    procs = 1 if manifest_csv else min(processes or 1, max(total, 1))
    run = Ingestor(a, skip_existing=skip_existing, processes=procs,
                   jobs=min(jobs or default_jobs(a, procs), max(total, 1))).run(
        requests, progress, validate_all_first=bool(manifest_csv))
    stored = sum(r.status == "stored" for r in run.results)
    if as_json:
        emit_json({"ok": run.ok, "stored": stored,
                   "existing": sum(r.status == "exists" for r in run.results),
                   "failed": sum(r.status not in ("stored", "exists") for r in run.results),
                   "results": [r.as_dict() for r in run.results],
                   "checkpoint": run.checkpoint, "checkpoint_error": run.checkpoint_error})
    else:
        for r in run.results:
            if r.status == "stored":
                late = "  LATE_INPUT" if r.input_verdict == "late" else ""
                click.echo(f"{r.record_id}  {printable_name(r.file)}  "
                           f"retain-until {r.retain_until}{late}")
                for w in r.warnings or ():
                    info(f"warning: {printable_name(r.file)}: {w['code']}: {w['message']}")
            elif r.status == "exists":
                click.echo(f"{r.record_id}  {printable_name(r.file)}  already stored")
        cp = run.checkpoint
        info(f"{stored} stored, {len(run.results) - stored} not stored"
             + (f"; checkpoint {cp['tree_size']} timestamped {cp['gen_time']}" if cp else ""))
        if run.checkpoint_error:
            err = run.checkpoint_error
            info(f"error: {err['code']}: checkpoint not made: {err['message']}")
            info("hint: the records are stored; the next run or 'edoc doctor --repair' "
                 "checkpoints them")
    sys.exit(0 if run.ok else 1)


# -- capture ---------------------------------------------------------------------------------

@cli.command()
@click.argument("files", nargs=-1, required=True)
@click.option("-o", "--output", required=True, metavar="FILE.csv",
              help="The review CSV to write (its directory must hold the files).")
@click.option("--profile", "profiles", multiple=True, metavar="ID",
              help="Ordinance profile to pre-fill in the profile column (repeatable).")
@click.option("--jobs", type=click.IntRange(min=1, max=64), metavar="N",
              help="OCR worker processes (default: the cores available).")
@click.option("--no-ocr", "no_ocr", is_flag=True,
              help="Read text layers, e-invoices and file names only; no OCR.")
@click.option("--force", is_flag=True, help="Overwrite FILE.csv if it exists.")
@json_option
def capture(files: tuple[str, ...], output: str, profiles: tuple[str, ...], jobs: int | None,
            no_ocr: bool, force: bool, as_json: bool) -> None:
    """Read FILES and write a review CSV of suggested fields for 'ingest --manifest'.

    Each field comes with its source (einvoice, pdf-text, ocr, filename) and a confidence;
    a person checks the row, corrects what is wrong and writes their name in confirmed_by.
    Exit 0 when every file was read, 1 when any could not be (its row is still written).
    """
    from edoc.policy.values import printable_name
    from edoc.services import capture as cap

    out = Path(output)
    cap.check_output(out, replace=force)
    inside: list[str] = []
    outside: list[dict[str, str]] = []
    for f in files:
        try:
            cap.relative_to_csv(f, out.parent)
            inside.append(f)
        except EdocError as exc:
            outside.append({"file": f, "code": exc.code, "message": exc.message})
            if not as_json:
                info(f"skipped: {printable_name(f)}: {exc.code}: {exc.message}")
    tty = sys.stderr.isatty() and not as_json
    done = [0]

    def progress(row: Any) -> None:
        done[0] += 1
        name = printable_name(row.path)
        if row.error and not as_json:
            info(f"not read: {name}: {row.error['code']}: {row.error['message']}")
        elif tty:
            info(f"[{done[0]}/{len(inside)}] read {name}")

    rows = cap.capture_files(inside, jobs=jobs, ocr=not no_ocr, progress=progress)
    cap.write_review_csv(out, cap.review_rows(rows, out.parent, profiles), replace=force)
    failed = sum(r.error is not None for r in rows) + len(outside)
    if as_json:
        emit_json({"ok": failed == 0, "output": str(out), "read": len(rows),
                   "failed": failed, "skipped": outside,
                   "results": [r.as_dict() for r in rows]})
    else:
        suggested = sum(bool(r.suggestions) for r in rows)
        info(f"{len(rows)} rows written to {printable_name(str(out))} ({suggested} with "
             f"suggestions, {failed} not read); check them, fill confirmed_by, then "
             f"'edoc ingest --manifest {printable_name(str(out))}'")
    sys.exit(0 if failed == 0 else 1)


def _suggested_requests(requests: list[Any], jobs: int | None) -> list[Any]:
    """``ingest --suggest``: each file's suggested fields shown on the terminal, one prompt
    per field (Enter accepts, typed text corrects, ``-`` leaves it empty); a field given as
    a flag is typed and not asked. Accepted suggestions carry their provenance and the
    confirmer's name, as a confirmed review-CSV row does (``services.capture``)."""
    import getpass

    from edoc.policy.values import printable_name
    from edoc.services import capture as cap

    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise ConfigError("--suggest asks at a terminal, and stdin or stderr is not one",
                          code="SUGGEST_NEEDS_TTY",
                          hint="for batches: edoc capture FILES -o review.csv, fill "
                               "confirmed_by, then edoc ingest --manifest review.csv")
    info(f"reading {len(requests)} file(s)…")
    rows = cap.capture_files([r.path for r in requests], jobs=jobs)
    try:
        login = getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment
        login = ""
    by = click.prompt("Confirmed by (your name)", default=login or None, err=True).strip()
    info("Enter accepts a suggestion, typed text corrects it, '-' leaves the field empty.")
    out = []
    for request, row in zip(requests, rows, strict=True):
        problem = f"  [{row.error['code']}: {row.error['message']}]" if row.error else ""
        info(f"{printable_name(request.path)}{problem}")
        answers: dict[str, tuple[str, Any]] = {}
        for name in cap.SUGGESTED:
            typed = getattr(request, name)
            if typed:
                info(f"  {name}: {printable_name(typed)} (typed)")
                continue
            s = row.suggestions.get(name)
            shown = (f" [{printable_name(s.value)}] ({s.source}, {s.confidence:.2f})" if s
                     else " (no suggestion)")
            reply = click.prompt(f"  {name}{shown}", default="", show_default=False,
                                 err=True).strip()
            if reply == "-":
                answers[name] = ("", None)
            elif reply:
                answers[name] = (reply, None)
            elif s is not None:
                answers[name] = (s.value, s)
        out.append(cap.confirmed_request(request, answers, by))
    return out


# -- search / show / get ---------------------------------------------------------------------

#: Columns of ``search --csv`` and keys of ``search --json``, in order; each is a field of
#: ``edoc.services.records.SearchHit``. New ones go at the end (scripts index the CSV).
SEARCH_HEADER = ("record_id", "version", "state", "transaction_date", "amount", "counterparty",
                 "doc_type", "ledger_ref", "profiles", "retain_until", "content_sha256",
                 "original_name")
#: Keys ``search --json`` adds after ``SEARCH_HEADER`` (the CSV's columns stay as they were).
SEARCH_JSON_EXTRA = ("invoice_number", "registration_number")


def _row_values(hit: Any) -> list[Any]:
    return [",".join(hit.profiles) if c == "profiles" else getattr(hit, c)
            for c in SEARCH_HEADER]


search_options = _options(
    click.option("--from", "date_from", metavar="YYYY-MM-DD", help="Transaction date from."),
    click.option("--to", "date_to", metavar="YYYY-MM-DD", help="Transaction date to."),
    click.option("--min-amount", help="Amount at least (yen)."),
    click.option("--max-amount", help="Amount at most (yen)."),
    click.option("--counterparty", help="Part of the name (NFKC, case-insensitive)."),
    click.option("--doc-type"),
    click.option("--ledger-ref"),
    click.option("--profile"),
    click.option("--invoice-number", help="An e-invoice's number (exact)."),
    click.option("--registration-number", metavar="T…",
                 help="The seller's registration number (登録番号, exact)."),
    click.option("--include-deleted", is_flag=True, help="Also deleted (tombstoned) records."),
    click.option("--all-versions", is_flag=True, help="Every version, not only the latest."),
    click.option("--text", "text", metavar="FRAGMENT",
                 help="Part of the document's text (PDF text layer, e-invoice, OCR); one "
                      "character is enough (東)."),
)


def _search_query(opts: dict[str, Any], limit: int | None = None) -> Any:
    from edoc.services.records import search_query

    return search_query(
        date_from=opts["date_from"], date_to=opts["date_to"], min_amount=opts["min_amount"],
        max_amount=opts["max_amount"], counterparty=opts["counterparty"],
        doc_type=opts["doc_type"], ledger_ref=opts["ledger_ref"], profile=opts["profile"],
        invoice_number=opts["invoice_number"],
        registration_number=opts["registration_number"],
        include_deleted=opts["include_deleted"], all_versions=opts["all_versions"],
        limit=limit, text=opts.get("text"))


@cli.command()
@search_options
@click.option("--limit", type=click.IntRange(min=1))
@click.option("--csv", "as_csv", is_flag=True, help="CSV output (formulas neutralised).")
@click.option("--duplicates", is_flag=True,
              help="List pairs of active records with the same counterparty (or 登録番号), "
                   "date and amount but other bytes (DUPLICATE_SUSPECT).")
@json_option
@click.pass_context
def search(ctx: click.Context, /, limit: int | None, as_csv: bool, as_json: bool,
           duplicates: bool, **opts: Any) -> None:
    """Search records; all filters combine with AND (検索性: ranges on date and amount)."""
    from edoc.policy.values import printable_name
    from edoc.services.records import search_records

    if duplicates:
        _search_duplicates(ctx, limit, as_csv, as_json, opts)
        return
    q = _search_query(opts, limit)
    a = _archive(ctx)
    rows = search_records(a, q, a.actor)
    if as_json:
        emit_json({"ok": True, "count": len(rows),
                   "records": [dict(zip(SEARCH_HEADER, _row_values(r), strict=True),
                                    **{k: getattr(r, k) for k in SEARCH_JSON_EXTRA})
                               for r in rows]})
    elif as_csv:
        write_csv(iter(_row_values(r) for r in rows), SEARCH_HEADER)
    else:
        for r in rows:
            amount = f"¥{r.amount:,}" if r.amount is not None else "-"
            state = "" if r.state == "active" else f" [{r.state}]"
            click.echo(f"{r.record_id}  v{r.version}  {r.transaction_date or '-':10}  "
                       f"{amount:>12}  {r.doc_type or '-':14}  {r.counterparty or '-'}{state}")
            # Which document it is: the name it was ingested under (made printable, so a
            # name cannot forge a line) and the SHA-256 it was sealed with.
            if r.content_sha256:
                name = printable_name(r.original_name) if r.original_name else "-"
                click.echo(f"    {name}  sha256 {r.content_sha256}")
        info(f"{len(rows)} record(s)")


#: Keys of ``search --duplicates --json`` pairs and columns of its ``--csv``.
DUPLICATE_HEADER = ("record_id", "other_record_id", "matched_on", "transaction_date",
                    "amount", "counterparty", "other_counterparty", "registration_number")


def _search_duplicates(ctx: click.Context, limit: int | None, as_csv: bool, as_json: bool,
                       opts: dict[str, Any]) -> None:
    from edoc.policy.values import printable_name
    from edoc.services.records import duplicate_report

    if any(v not in (None, False) for v in opts.values()):
        raise ConfigError("--duplicates lists every suspected pair; it takes no filter",
                          code="USAGE_ERROR", hint="edoc search --duplicates [--json|--csv]")
    a = _archive(ctx)
    pairs = duplicate_report(a, a.actor, limit)
    rows = [[getattr(p, k) for k in DUPLICATE_HEADER] for p in pairs]
    if as_json:
        emit_json({"ok": True, "count": len(pairs),
                   "pairs": [dict(zip(DUPLICATE_HEADER, r, strict=True)) for r in rows]})
    elif as_csv:
        write_csv(iter(rows), DUPLICATE_HEADER)
    else:
        for p in pairs:
            click.echo(f"{p.record_id}  {p.other_record_id}  {p.transaction_date}  "
                       f"¥{p.amount:,}  same {p.matched_on}  "
                       f"{printable_name(p.counterparty or p.registration_number or '-')}")
        info(f"{len(pairs)} suspected duplicate pair(s)")


@cli.command()
@search_options
@click.option("-o", "--output", required=True, metavar="DIR|FILE.zip",
              help="A new directory, or a .zip file.")
@json_option
@click.pass_context
def export(ctx: click.Context, /, output: str, as_json: bool, **opts: Any) -> None:
    """Export originals + index.csv for a tax-office download request (ダウンロードの求め).

    All or nothing; the CSV is UTF-8 with BOM for Excel, formulas neutralised.
    """
    from edoc.services.export import export as run_export

    summary = run_export(_archive(ctx), _search_query(opts), Path(output))
    if as_json:
        emit_json({"ok": True, **summary.as_dict()})
    else:
        click.echo(f"exported {summary.records} record(s), {summary.bytes:,} bytes to "
                   f"{summary.path}")


@cli.command()
@click.argument("record_id")
@click.option("--history", is_flag=True, help="Show every version's manifest.")
@json_option
@click.pass_context
def show(ctx: click.Context, record_id: str, history: bool, as_json: bool) -> None:
    """Show a record: its metadata, retention and versions."""
    from edoc.services.records import show_record

    a = _archive(ctx)
    rec = show_record(a, record_id, a.actor, history=history)
    if as_json:
        emit_json({"ok": True, "record_id": record_id, "state": rec.state,
                   "latest_version": rec.latest_version,
                   "versions": [m.as_json() for m in rec.manifests],
                   "ledger_refs": list(rec.ledger_refs),
                   "seamless": rec.seamless.as_dict() if rec.seamless else None})
        return
    click.echo(f"record {record_id}  ({rec.state}, {rec.latest_version} version(s))")
    for m in rec.manifests:
        meta = m.metadata.as_json()
        click.echo(f"  v{m.version} {m.kind}  ingested {m.ingested_at} by {m.actor}")
        c = m.content
        if c is not None:
            click.echo(f"    file      {c.original_name}  {c.media_type}  {c.size} bytes")
            click.echo(f"    sha256    {c.sha256}")
        click.echo(f"    profiles  {', '.join(m.profiles)}  "
                   f"({m.document_class}, {m.doc_type or '-'})")
        for k in ("transaction_date", "amount", "counterparty", "ledger_ref", "author",
                  "invoice_number", "registration_number"):
            if meta.get(k) is not None:
                click.echo(f"    {k:<17} {meta[k]}")
        _show_einvoice(m.einvoice)
        _show_provenance(m.provenance, m.warnings)
        inp = m.input
        if inp:
            click.echo(f"    input     received {inp['received']}, deadline {inp['deadline']}: "
                       f"{inp['verdict']}")
        ret = m.retention
        click.echo(f"    retain    until {ret.get('retain_until')} "
                   f"({', '.join(o.get('rule', '?') for o in ret.get('rules', []))})")
        if m.reason:
            click.echo(f"    reason    {m.reason}")
    if rec.ledger_refs:
        click.echo(f"  ledger refs  {', '.join(rec.ledger_refs)}")
    _show_seamless(rec.seamless)


def _show_seamless(reading: Any) -> None:
    """The デジタルシームレス block: each condition as edoc reads it."""
    if reading is None:
        return
    from edoc.policy.seamless import DISCLAIMER

    click.echo(f"  seamless  {'ready' if reading.ready else 'not ready'} "
               f"(デジタルシームレス, applies from {reading.applies_from}; {DISCLAIMER})")
    for c in reading.conditions:
        click.echo(f"    ({c.id}) {c.status:<5}  {c.name}: {c.detail}  [{c.basis}]")
    for a in reading.amount_changes:
        click.echo(f"    amount    v{a.version}: {a.old} -> {a.new}  ({a.reason})")


def _show_provenance(block: Any, warnings: Any) -> None:
    """Where each search field came from and who confirmed it; the version's warnings."""
    from edoc.policy.values import printable_name

    for name, p in sorted((block or {}).items()):
        via = p.get("via") or p.get("suggested_by")
        detail = [f"via {via}"] if via else []
        if p.get("confidence") is not None:
            detail.append(f"confidence {p['confidence']}")
        if p.get("confirmed_by"):
            detail.append(f"confirmed by {printable_name(str(p['confirmed_by']))}")
        click.echo(f"    source    {name}: {p.get('source')}"
                   + (f" ({', '.join(detail)})" if detail else ""))
    for w in warnings or ():
        click.echo(f"    warning   {w.get('code')}: {printable_name(str(w.get('message')))}")


def _show_einvoice(block: Any) -> None:
    """The ``einvoice`` block of a manifest: kind, currency, sources, warnings."""
    if not block:
        return
    from edoc.policy.values import printable_name

    click.echo(f"    einvoice  {block.get('kind')} {block.get('document_currency') or '-'}"
               f"  ({block.get('customization_id')})")
    sources = block.get("field_sources") or {}
    if sources:
        click.echo("    sources   " + ", ".join(f"{k}={v}" for k, v in sources.items()))
    for w in block.get("warnings") or ():
        click.echo(f"    warning   {w.get('code')}: {printable_name(str(w.get('message')))}")


@cli.command()
@click.argument("record_id")
@click.option("-o", "--output", required=True, metavar="PATH",
              help="Where to write the content ('-' for stdout).")
@click.option("--version", "version", type=int, help="Version (default: latest with content).")
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@click.pass_context
def get(ctx: click.Context, record_id: str, output: str, version: int | None,
        force: bool) -> None:
    """Write a record's original bytes to PATH."""
    from edoc.services.records import copy_out

    a = _archive(ctx)
    if output == "-":
        copy_out(a, record_id, version, sys.stdout.buffer, actor=a.actor)
        return
    done = copy_out(a, record_id, version, Path(output), force=force, actor=a.actor)
    info(f"wrote {done.path} ({done.size} bytes, sha256 {done.sha256})")


@cli.command()
@click.argument("record_id")
@click.option("-o", "--output", required=True, metavar="FILE.pdf",
              help="Where to write the PDF.")
@click.option("--version", "version", type=int, help="Version (default: latest with content).")
@click.option("--force", is_flag=True, help="Overwrite FILE.pdf if it exists.")
@json_option
@click.pass_context
def render(ctx: click.Context, record_id: str, output: str, version: int | None,
           force: bool, as_json: bool) -> None:
    """Write a readable PDF of a stored JP PINT e-invoice (the XML stays the record)."""
    from edoc.services.rendering import render_record

    a = _archive(ctx)
    done = render_record(a, record_id, version, Path(output), force=force, actor=a.actor)
    if as_json:
        emit_json({"ok": True, "record_id": done.record_id, "version": done.version,
                   "content_sha256": done.content_sha256, "path": str(done.path),
                   "pages": done.pages, "size": done.size, "sha256": done.sha256,
                   "title": done.title, "number": done.number})
        return
    info(f"wrote {done.path} ({done.title} {done.number or ''}, {done.pages} pages, "
         f"sha256 {done.sha256})")

# -- verify ------------------------------------------------------------------------------

def _render_report(rep: Any) -> None:
    """One line per record version on stdout; each failing check on stderr."""
    from edoc.model.verdict import Status

    click.echo(f"{rep.status.value.upper():13} {rep.record_id} v{rep.version}  "
               f"({len(rep.checks)} checks)")
    for c in rep.checks:
        if c.status is not Status.PASS:
            info(f"{rep.record_id} v{rep.version}: {c.status.value.upper()} {c.name} "
                 f"{c.code}: {c.detail}")


@cli.command()
@click.argument("record_ids", nargs=-1)
@click.option("--all", "verify_all", is_flag=True, help="Every record in the archive.")
@click.option("--from", "date_from", metavar="YYYY-MM-DD", help="Transaction date from.")
@click.option("--to", "date_to", metavar="YYYY-MM-DD", help="Transaction date to.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Worker processes (default: one per core, up to 8, from 5,000 records "
                   "on the local store and 500 on S3; else 1).")
@click.option("--csv", "as_csv", is_flag=True, help="One row per record, a column per check.")
@json_option
@click.pass_context
def verify(ctx: click.Context, record_ids: tuple[str, ...], verify_all: bool,
           date_from: str | None, date_to: str | None, workers: int | None, as_csv: bool,
           as_json: bool) -> None:
    """Verify records: content digest, manifest, catalog, ledger inclusion, checkpoint seal
    and timestamp, storage lock. Exit 0 only if every check passes.

    With --all or --from/--to every record of the period is checked (一括検証), in
    parallel, streaming the report (memory stays flat however many records there are).
    """
    from edoc.services import period_verification as pv

    if not record_ids and not verify_all and not date_from and not date_to:
        raise ConfigError("name records, or use --all or --from/--to", code="USAGE_ERROR")
    if as_json and as_csv:
        raise ConfigError("choose --json or --csv", code="USAGE_ERROR")
    if not record_ids and workers != 1 and (os.cpu_count() or 1) > 1:
        pv.start_fork_server()  # its imports overlap this process's (counting comes first)
    from edoc.model.verdict import REPORT_SCHEMA_VERSION, Status
    from edoc.policy.values import parse_date
    from edoc.services.records import period_record_ids

    a = _archive(ctx)
    lo = parse_date(date_from, "--from") if date_from else None
    hi = parse_date(date_to, "--to") if date_to else None
    if record_ids:
        ids: Iterator[str] = iter(record_ids)
        total = len(record_ids)
        n_workers = 1
    else:
        total, ids = period_record_ids(a, lo, hi)
        n_workers = workers or pv.default_workers(a, total)
    tty = sys.stderr.isatty() and not as_json
    counts = {s.value: 0 for s in Status}
    started = clock.now()
    if as_json:
        click.echo(f'{{"schema_version": {REPORT_SCHEMA_VERSION}, "reports": [', nl=False)
    elif as_csv:
        write_csv(iter(()), ["record_id", "version", "status", *pv.CHECK_NAMES])
    render: pv.Render[Any] = (pv.reports_json if as_json else pv.csv_cells if as_csv
                              else pv.as_reports)
    n = 0
    try:
        # Each chunk comes rendered by the process that verified it (JSON text, CSV
        # cells): this process only counts and writes.
        for statuses, out in pv.verify_chunks(a, ids, workers=n_workers, render=render,
                                              batch=total > 1):
            if not statuses:
                continue
            for status in statuses:
                counts[status.value] += 1
            if as_json:
                click.echo(("" if n == 0 else ",") + out, nl=False)
            elif as_csv:
                write_csv(iter(out), [])
            else:
                for rep in out:
                    _render_report(rep)
            before, n = n, n + len(statuses)
            if tty and n // 100 > before // 100:
                click.echo(f"\r{n}/{total} verified", err=True, nl=False)
    except EdocError as exc:
        if not as_json:
            raise
        # The report is streamed: an error after it began must still close one JSON
        # document (a second one after it would make the whole output unreadable).
        click.echo(f'], "error": {json.dumps(exc.as_dict(), ensure_ascii=False)}, '
                   f'"versions": {n}, "ok": false}}')
        sys.exit(exc.exit_code)
    if tty and n >= 100:
        click.echo("", err=True)
    ok = counts["pass"] == n
    summary = {"versions": n, **counts, "workers": n_workers,
               "started_at": started.isoformat(timespec="seconds"),
               "finished_at": clock.now().isoformat(timespec="seconds")}
    if as_json:
        click.echo(f'], "summary": {json.dumps(summary)}, "ok": {json.dumps(ok)}}}')
    elif not as_csv:
        info(f"{n} version(s): {counts['pass']} pass, {counts['fail']} fail, "
             f"{counts['indeterminate']} indeterminate")
    sys.exit(0 if ok else 1)


# -- lifecycle -------------------------------------------------------------------------------

def _render_change(result: Any, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json({"ok": True, **result.as_dict()})
    else:
        click.echo(f"{result.record_id} v{result.version} {result.kind}  "
                   f"retain-until {result.retain_until}")
        info(f"{verb}; the earlier versions are kept unchanged")


@cli.command()
@click.argument("record_id")
@click.option("--by", "by", required=True, metavar="NAME",
              help="The person confirming (responsible for the values; NTA: OCR is only "
                   "input support).")
@click.option("--doc-type")
@click.option("--date", "tx_date", metavar="YYYY-MM-DD", help="Transaction date.")
@click.option("--amount", help="Amount in whole yen.")
@click.option("--counterparty", help="取引先 (counterparty) name.")
@click.option("--registration-number", metavar="T…", help="The issuer's 登録番号.")
@click.option("--reason", help="Kept in the history (default: which fields, by whom).")
@json_option
@click.pass_context
def confirm(ctx: click.Context, /, record_id: str, by: str, reason: str | None,
            as_json: bool, **opts: Any) -> None:
    """Confirm search fields after ingest: a new version, the history kept (like correct)."""
    from edoc.services.lifecycle import Lifecycle

    a = _archive(ctx)
    result = Lifecycle(a).confirm(record_id, by=by, reason=reason,
                                  changes=_request("", (), opts))
    _render_change(result, as_json, "confirmed")


@cli.command()
@click.argument("record_id")
@click.argument("file", required=False)
@click.option("--reason", required=True, help="Why (kept in the history).")
@metadata_options
@json_option
@click.pass_context
def correct(ctx: click.Context, /, record_id: str, file: str | None, reason: str,
            as_json: bool, **opts: Any) -> None:
    """Correct a record: a new version with new content (FILE) and/or metadata (訂正)."""
    from edoc.services.lifecycle import Lifecycle

    a = _archive(ctx)
    result = Lifecycle(a).correct(record_id, reason=reason, file=file,
                                  changes=_request(file or "", (), opts))
    _render_change(result, as_json, "corrected")


@cli.command()
@click.argument("record_id")
@click.option("--ledger-ref", "ledger_ref", required=True, metavar="REF",
              help="The book entry (e.g. voucher number) this record belongs to.")
@click.option("--reason", help="Why (kept in the history); default: "
              "'ledger reference added (相互関連性)'.")
@json_option
@click.pass_context
def link(ctx: click.Context, record_id: str, ledger_ref: str, reason: str | None,
         as_json: bool) -> None:
    """Add a cross-reference to the books (相互関連性): a correction version."""
    from edoc.services.lifecycle import Lifecycle

    result = Lifecycle(_archive(ctx)).link(record_id, ledger_ref=ledger_ref, reason=reason)
    _render_change(result, as_json, "linked to the books")


@cli.command()
@click.argument("record_id")
@click.option("--reason", required=True, help="Why (kept in the history).")
@json_option
@click.pass_context
def delete(ctx: click.Context, record_id: str, reason: str, as_json: bool) -> None:
    """Delete a record: a tombstone version; history stays viewable until retention ends."""
    from edoc.services.lifecycle import Lifecycle

    result = Lifecycle(_archive(ctx)).delete(record_id, reason=reason)
    _render_change(result, as_json, "deleted (tombstone)")


@cli.group()
def retention() -> None:
    """Retention of records (extend only; never shortened)."""


@retention.command("extend")
@click.argument("record_id")
@click.option("--reason", help="Why (kept in the history).")
@retention_options
@json_option
@click.pass_context
def retention_extend(ctx: click.Context, /, record_id: str, reason: str | None, as_json: bool,
                     **opts: Any) -> None:
    """Extend a record's retention, e.g. --loss-year once a loss is known."""
    from edoc.services.lifecycle import Lifecycle

    result = Lifecycle(_archive(ctx)).extend_retention(
        record_id, reason=reason, changes=_request("", (), opts))
    _render_change(result, as_json, "retention extended; storage locks extended too")


@cli.command()
@click.argument("record_ids", nargs=-1, required=True)
@click.option("--reason", required=True)
@click.option("--case", "case_ref", help="Case or matter reference.")
@json_option
@click.pass_context
def hold(ctx: click.Context, record_ids: tuple[str, ...], reason: str, case_ref: str | None,
         as_json: bool) -> None:
    """Put records on legal hold: no disposal, however old, until released."""
    from edoc.services.lifecycle import Lifecycle

    out = Lifecycle(_archive(ctx)).hold(record_ids, reason=reason, case=case_ref)
    if as_json:
        emit_json({"ok": True, "holds": out})
    else:
        for h in out:
            case = f" (case {h['case']})" if h["case"] else ""
            click.echo(f"{h['record_id']}  on hold{case}")


@cli.command()
@click.argument("record_ids", nargs=-1, required=True)
@click.option("--reason", required=True)
@json_option
@click.pass_context
def release(ctx: click.Context, record_ids: tuple[str, ...], reason: str, as_json: bool
            ) -> None:
    """Release legal holds."""
    from edoc.services.lifecycle import Lifecycle

    out = Lifecycle(_archive(ctx)).release(record_ids, reason=reason)
    if as_json:
        emit_json({"ok": True, "released": out})
    else:
        for h in out:
            click.echo(f"{h['record_id']}  released")


@cli.command("holds")
@click.option("--all", "include_released", is_flag=True, help="Include released holds.")
@json_option
@click.pass_context
def holds_cmd(ctx: click.Context, include_released: bool, as_json: bool) -> None:
    """List legal holds."""
    from edoc.services.lifecycle import Lifecycle

    rows = Lifecycle(_archive(ctx)).list_holds(include_released=include_released)
    if as_json:
        emit_json({"ok": True, "holds": rows})
        return
    for h in rows:
        state = f"released {h['released_at']}" if h["released_at"] else "ACTIVE"
        click.echo(f"{h['record_id']}  {state}  since {h['placed_at']}  by {h['actor']}  "
                   f"case {h['case_ref'] or '-'}: {h['reason']}")
    info(f"{len(rows)} hold(s)")


@cli.command()
@click.option("--dry-run", is_flag=True, help="List what would be disposed; change nothing.")
@click.option("--yes", is_flag=True, help="Dispose for real.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N records this run.")
@json_option
@click.pass_context
def purge(ctx: click.Context, dry_run: bool, yes: bool, limit: int | None,
          as_json: bool) -> None:
    """Dispose of records whose retention has ended (no hold) and certify it (廃棄証明).

    "Now" is a fresh timestamp's time; there is no option to purge as of another date.
    Exit 0 when everything selected was disposed, 1 otherwise.
    """
    from edoc.services.disposal import Disposer

    if dry_run == yes:
        raise ConfigError("purge needs exactly one of --dry-run or --yes", code="USAGE_ERROR")
    a = _archive(ctx)
    report = Disposer(a).run(dry_run=dry_run, limit=limit)
    doc = report.as_dict()
    if as_json:
        emit_json(doc)
    else:
        sel = doc["selected"]
        verb = "would dispose" if dry_run else "selected"
        click.echo(f"{verb} {sel['records']} record(s), {sel['versions']} version(s), "
                   f"{sel['bytes']:,} bytes (now = {doc['now']})")
        for pid, n in sorted(sel["by_profile"].items()):
            click.echo(f"  {pid}: {n['records']} record(s), {n['bytes']:,} bytes")
        for rid in doc["resumed_runs"]:
            info(f"resumed interrupted run {rid}")
        for r in doc["refused"]:
            info(f"refused: {r['record_id']}: {r['code']}: {r['message']}")
        for key in doc["certificates"]:
            click.echo(f"certificate: {key}")
            click.echo(f"  fetch it:  {_certificate_get_command(a.cfg.dir, key)}")
    sys.exit(0 if report.ok else 1)


def _certificate_get_command(archive_dir: Path, key: str) -> str:
    """The exact command that copies certificate ``key`` out with its seal and token."""
    import shlex

    out = "disposal-" + key.rsplit("/", 1)[-1]
    return shlex.join(["edoc", "--archive", str(archive_dir), "certificate", "get", key,
                       "-o", out])


@cli.group("certificate")
def certificate_group() -> None:
    """Disposal certificates (廃棄証明): list them, copy one out for openssl."""


@certificate_group.command("list")
@json_option
@click.pass_context
def certificate_list(ctx: click.Context, as_json: bool) -> None:
    """List disposal certificates: key, run, trusted time, records, seal and token stored."""
    from edoc.services.certificates import list_certificates

    rows = list_certificates(_archive(ctx))
    if as_json:
        emit_json({"ok": True, "certificates": [
            {"key": c.key, "run_id": c.run.run_id, "time": c.run.time,
             "certified_at": c.run.certified_at, "actor": c.run.actor,
             "records": c.run.records, "versions": c.run.versions,
             "seal_stored": c.seal_stored, "timestamp_stored": c.timestamp_stored}
            for c in rows]})
        return
    for c in rows:
        seal = "seal" if c.seal_stored else "NO SEAL"
        token = "timestamp" if c.timestamp_stored else "NO TIMESTAMP"
        click.echo(f"{c.key}  {c.run.time}  {c.run.records} record(s), "
                   f"{c.run.versions} version(s)  {seal}, {token}")
    info(f"{len(rows)} certificate(s)")


@certificate_group.command("get")
@click.argument("key")
@click.option("-o", "--output", required=True, metavar="FILE",
              help="Where to write the certificate; its seal goes to FILE.p7s and its "
                   "RFC 3161 token to FILE.tsr.")
@click.option("--force", is_flag=True, help="Overwrite the files if they exist.")
@json_option
@click.pass_context
def certificate_get(ctx: click.Context, key: str, output: str, force: bool,
                    as_json: bool) -> None:
    """Copy the certificate KEY (see 'certificate list') out with its seal and token.

    Exit 1 if the store lacks the seal or the token (the certificate is still written).
    """
    from edoc.services.certificates import fetch_certificate

    got = fetch_certificate(_archive(ctx), key, Path(output), force=force)
    if as_json:
        emit_json({"ok": got.complete, "key": got.key, "run_id": got.run_id,
                   "certificate": str(got.certificate), "sha256": got.sha256,
                   "seal": str(got.seal) if got.seal else None,
                   "timestamp": str(got.timestamp) if got.timestamp else None})
    else:
        click.echo(f"wrote {got.certificate} (sha256 {got.sha256})")
        for label, path in (("seal", got.seal), ("timestamp token", got.timestamp)):
            if path is None:
                info(f"warning: the store holds no {label} for {got.key}")
            else:
                click.echo(f"wrote {path} ({label})")
        if got.complete:
            info(f"check it: openssl ts -verify -in {got.timestamp} -data {got.certificate} "
                 "-CAfile root-ca.pem -untrusted tsa.pem; openssl cms -verify -binary "
                 f"-inform DER -in {got.seal} -content {got.certificate} -CAfile "
                 "root-ca.pem -purpose any")
    sys.exit(0 if got.complete else 1)


# -- auditor's evidence ----------------------------------------------------------------------

@cli.command()
@click.argument("record_ids", nargs=-1)
@click.option("--from", "date_from", metavar="YYYY-MM-DD", help="Transaction date from.")
@click.option("--to", "date_to", metavar="YYYY-MM-DD", help="Transaction date to.")
@click.option("-o", "--output", required=True, metavar="BUNDLE.zip")
@json_option
@click.pass_context
def evidence(ctx: click.Context, record_ids: tuple[str, ...], date_from: str | None,
             date_to: str | None, output: str, as_json: bool) -> None:
    """Write an offline evidence bundle an auditor can check with openssl alone.

    Content, manifests, seals, inclusion proofs, checkpoints with tokens, certificates,
    version history and a VERIFY.md that walks through every check by hand.
    """
    from edoc.bundle import select_records, write_bundle
    from edoc.policy.values import parse_date

    if not record_ids and not (date_from or date_to):
        raise ConfigError("name records or give --from/--to", code="USAGE_ERROR")
    a = _archive(ctx)
    ids = list(record_ids) or select_records(
        a, parse_date(date_from, "--from") if date_from else None,
        parse_date(date_to, "--to") if date_to else None)
    summary = write_bundle(a, ids, Path(output), actor=a.actor)
    if as_json:
        emit_json({"ok": not summary.problems, **summary.as_dict()})
    else:
        click.echo(f"wrote {summary.path}: {summary.records} record(s), {summary.versions} "
                   f"version(s), sha256 {summary.sha256}")
        for p in summary.problems:
            info(f"warning: {p}")
        info(f"check it anywhere with: edoc verify-bundle {summary.path}  (or unzip it and "
             "follow VERIFY.md)")
    sys.exit(1 if summary.problems else 0)


@cli.command("verify-bundle")
@click.argument("bundle")
@click.option("--trust", "trust", multiple=True, metavar="ROOT.pem",
              help="Trust only these roots (obtained independently), not the bundle's own.")
@json_option
def verify_bundle_cmd(bundle: str, trust: tuple[str, ...], as_json: bool) -> None:
    """Check an evidence bundle with no archive, no configuration and no network."""
    from edoc.bundle import verify_bundle
    from edoc.model.verdict import Status

    report = verify_bundle(Path(bundle), trust=[Path(t) for t in trust])
    if as_json:
        emit_json(report.as_dict())
    else:
        for c in report.checks:
            if c.status is not Status.PASS:
                info(f"bundle: {c.status.value.upper()} {c.name} {c.code}: {c.detail}")
        for r in report.reports:
            _render_report(r)
        roots = "the roots you gave (--trust)" if trust else "the bundle's own roots"
        info(f"verified against {roots}: {'OK' if report.ok else 'FAILED'}")
    sys.exit(0 if report.ok else 1)


# -- operations: doctor, catalog, ledger, audit log ------------------------------------------

def _render_checks(checks: list[Any]) -> None:
    from edoc.model.verdict import Status

    for c in checks:
        mark = {Status.PASS: "ok  ", Status.FAIL: "FAIL", Status.INDETERMINATE: "note"}[c.status]
        click.echo(f"{mark} {c.name:12} {c.code:34} {c.detail}")


@cli.command()
@click.option("--repair", is_flag=True,
              help="Finish what interrupted runs left (pending leaves, orphans, checkpoint).")
@json_option
@click.pass_context
def doctor(ctx: click.Context, repair: bool, as_json: bool) -> None:
    """Health and WORM self-test of the archive and its store. Exit 1 on any failure."""
    from edoc.services.doctor import Doctor

    report = Doctor(_archive(ctx)).run(repair=repair)
    if as_json:
        emit_json(report.as_dict())
    else:
        for line in report.repaired:
            info(f"repaired: {line}")
        _render_checks(report.checks)
    sys.exit(0 if report.ok else 1)


@cli.group()
def catalog() -> None:
    """The catalog (a derived index of the object store)."""


@catalog.command("text")
@click.option("--ocr", is_flag=True, help="Also OCR scans (slow: seconds a page).")
@click.option("--all", "every", is_flag=True,
              help="Re-derive every record's text, not only the records that have none.")
@json_option
@click.pass_context
def catalog_text(ctx: click.Context, ocr: bool, every: bool, as_json: bool) -> None:
    """Derive the full text (search --text) of records that have none: after an ingest
    without --ocr, or one a crash interrupted after its commit."""
    from edoc.services.fulltext import rederive

    a = _archive(ctx)
    summary = rederive(a.catalog, a.store, ocr=ocr, only_missing=not every,
                       progress=None if as_json else info)
    if as_json:
        emit_json({"ok": True, **summary.as_dict()})


@catalog.command("rebuild")
@click.option("--ocr", is_flag=True,
              help="Also OCR scans to re-derive their full text (slow: seconds a page); "
                   "PDF text layers and e-invoices are always re-read.")
@json_option
@click.pass_context
def catalog_rebuild(ctx: click.Context, as_json: bool, ocr: bool) -> None:
    """Recreate the catalog from the object store alone (the old one is kept aside)."""
    from edoc.services.rebuild import rebuild_catalog
    from edoc.services.setup import open_for_rebuild

    # The catalog may be missing or corrupt: open the archive without checking it.
    a = open_for_rebuild(ctx.obj["archive"])
    ctx.find_root().call_on_close(a.release)
    summary = rebuild_catalog(a, progress=None if as_json else info, ocr=ocr)
    if as_json:
        emit_json({"ok": True, **summary.as_dict()})
    else:
        click.echo(f"rebuilt: {summary.records} records, {summary.versions} versions, "
                   f"{summary.ledger_entries} ledger entries, {summary.checkpoints} checkpoints")
        if summary.replaced:
            info(f"previous catalog kept as {summary.replaced}")
        info("next: edoc verify --all")


@catalog.command("migrate")
@click.option("--to", "to_url", required=True, metavar="URL",
              help="The new catalog database, e.g. postgresql://USER@HOST/DB (empty).")
@click.option("--no-verify", is_flag=True,
              help="Skip ledger verify and verify --all on the target (row digests still "
                   "compared).")
@json_option
@click.pass_context
def catalog_migrate(ctx: click.Context, to_url: str, no_verify: bool, as_json: bool) -> None:
    """Move the catalog to another database (SQLite -> PostgreSQL), verified before
    edoc.toml is switched to it; the old catalog is left untouched."""
    from edoc.services.catalog_migrate import migrate_catalog

    a = _archive(ctx)
    summary = migrate_catalog(a, to_url, verify=not no_verify,
                              progress=None if as_json else info)
    if as_json:
        emit_json({"ok": True, **summary.as_dict()})
        return
    click.echo(f"catalog moved to {summary.target}; edoc.toml now names it")
    info(f"the old catalog ({summary.source}) is untouched")


@cli.group("ledger")
def ledger_group() -> None:
    """The tamper-evident ledger: verify it, prove inclusion and consistency."""


@ledger_group.command("verify")
@json_option
@click.pass_context
def ledger_verify(ctx: click.Context, as_json: bool) -> None:
    """Recompute the tree, check every checkpoint and cross-check the store."""
    from edoc.services.audit import verify_ledger

    rep = verify_ledger(_archive(ctx))
    if as_json:
        emit_json(rep.as_dict())
    else:
        _render_checks(rep.checks)
        info(f"tree size {rep.tree_size}, {rep.checkpoints} checkpoint(s)")
    sys.exit(0 if rep.ok else 1)


@ledger_group.command("prove")
@click.argument("record_id")
@click.pass_context
def ledger_prove(ctx: click.Context, record_id: str) -> None:
    """Print the inclusion proof of every version of a record (JSON)."""
    from edoc.services.audit import prove

    emit_json(prove(_archive(ctx), record_id))


@ledger_group.command("consistency")
@click.argument("old", type=int)
@click.argument("new", type=int)
@click.pass_context
def ledger_consistency(ctx: click.Context, old: int, new: int) -> None:
    """Print an RFC 9162 consistency proof between checkpoints of size OLD and NEW (JSON)."""
    from edoc.services.audit import consistency

    doc = consistency(_archive(ctx), old, new)
    emit_json(doc)
    sys.exit(0 if doc["verified"] else 1)


@ledger_group.command("checkpoints")
@json_option
@click.pass_context
def ledger_checkpoints(ctx: click.Context, as_json: bool) -> None:
    """List checkpoints (tree size, root, timestamp)."""
    from edoc.services.audit import list_checkpoints

    rows = list_checkpoints(_archive(ctx))
    if as_json:
        emit_json({"ok": True, "checkpoints": rows})
        return
    for r in rows:
        click.echo(f"{r['tree_size']:>8}  {r['root_hash']}  {r['gen_time']}")


@cli.command("audit-log")
@click.option("--from", "date_from", metavar="YYYY-MM-DD")
@click.option("--to", "date_to", metavar="YYYY-MM-DD")
@click.option("--csv", "as_csv", is_flag=True)
@json_option
@click.pass_context
def audit_log(ctx: click.Context, date_from: str | None, date_to: str | None, as_csv: bool,
              as_json: bool) -> None:
    """Who read what, and when (search, show, get, evidence, export)."""
    from edoc.policy.values import parse_date
    from edoc.services.audit import read_access_log

    lo = parse_date(date_from, "--from").isoformat() if date_from else None
    hi = parse_date(date_to, "--to").isoformat() if date_to else None
    rows = list(read_access_log(_archive(ctx), lo, hi))
    if as_json:
        emit_json({"ok": True, "entries": rows})
    elif as_csv:
        write_csv(iter([r["id"], r["at"], r["actor"], r["action"], " ".join(r["record_ids"])]
                       for r in rows), ["id", "at", "actor", "action", "record_ids"])
    else:
        for r in rows:
            ids = ", ".join(r["record_ids"][:5]) + (" …" if len(r["record_ids"]) > 5 else "")
            click.echo(f"{r['at']}  {r['actor']:12} {r['action']:8} {ids}")


@cli.command()
@click.option("--before", metavar="YYYY-MM-DD",
              help="Renew evidence whose TSA certificate expires before this date "
                   "(default: within a year).")
@json_option
@click.pass_context
def renew(ctx: click.Context, before: str | None, as_json: bool) -> None:
    """Renew evidence before TSA certificates expire (archive-timestamp style)."""
    from edoc.policy.values import parse_date
    from edoc.services.renewal import renew as run_renew

    when = None
    if before:
        d = parse_date(before, "--before")
        when = datetime(d.year, d.month, d.day, tzinfo=UTC)
    summary = run_renew(_archive(ctx), when)
    if as_json:
        emit_json({"ok": True, **summary.as_dict()})
        return
    if summary.tsa_certificate_reissued:
        info("re-issued the embedded TSA certificate (NOT ACCREDITED)")
    if summary.renewed:
        click.echo(f"renewed {len(summary.renewed)} checkpoint(s) under checkpoint "
                   f"{summary.checkpoint}")
    else:
        click.echo("nothing to renew before " + summary.before.date().isoformat())


# -- registry: the NTA register of qualified invoice issuers ---------------------------------

@cli.group("registry")
def registry_group() -> None:
    """The NTA register of qualified invoice issuers (適格請求書発行事業者), offline."""


def _registry_doc(held: Any) -> dict[str, Any]:
    return {"as_of": held.as_of, "rows": held.rows, "numbers": held.numbers,
            "imported_at": held.imported_at, "imported_by": held.actor,
            "files": [{"name": f.name, "sha256": f.sha256, "size": f.size, "rows": f.rows}
                      for f in held.files]}


@registry_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD",
              help="The register's date (default: the newest updateDate in the files).")
@click.option("--force", is_flag=True, help="Replace a register newer than these files.")
@json_option
@click.pass_context
def registry_import(ctx: click.Context, files: tuple[str, ...], as_of: str | None,
                    force: bool, as_json: bool) -> None:
    """Replace the register with the NTA 全件データ CSV FILE(s), all or nothing."""
    from edoc.policy.values import parse_date
    from edoc.services.registry import import_register

    day = parse_date(as_of, "--as-of") if as_of else None
    done = import_register(_archive(ctx), [Path(f) for f in files], as_of=day, force=force)
    if as_json:
        emit_json({"ok": True, "replaced_as_of": done.replaced,
                   "register": _registry_doc(done.register)})
        return
    r = done.register
    click.echo(f"imported the register as of {r.as_of}: {r.rows} row(s), "
               f"{r.numbers} number(s)")
    if done.replaced:
        info(f"replaced the register as of {done.replaced}")


@registry_group.command("status")
@json_option
@click.pass_context
def registry_status(ctx: click.Context, as_json: bool) -> None:
    """Show the register held: as-of date, rows, numbers, when imported, file digests."""
    from edoc.services.registry import held

    reg = held(_archive(ctx))
    if as_json:
        emit_json({"ok": True, "register": None if reg is None else _registry_doc(reg)})
        return
    if reg is None:
        click.echo("no register imported: registration numbers are not checked")
        return
    click.echo(f"register as of {reg.as_of}: {reg.rows} row(s), {reg.numbers} number(s)")
    click.echo(f"imported {reg.imported_at} by {reg.actor}")
    for f in reg.files:
        click.echo(f"  {f.sha256}  {f.name} ({f.rows} row(s), {f.size} bytes)")


@registry_group.command("lookup")
@click.argument("numbers", nargs=-1, required=True, metavar="T…")
@click.option("--on", "on", metavar="YYYY-MM-DD",
              help="Was it registered on this date? (default: today in Japan)")
@json_option
@click.pass_context
def registry_lookup(ctx: click.Context, numbers: tuple[str, ...], on: str | None,
                    as_json: bool) -> None:
    """Look registration numbers up. Exit 1 unless every one was registered on the date."""
    from edoc.policy.values import parse_date
    from edoc.services.registry import lookup

    day = parse_date(on, "--on") if on else None
    found = lookup(_archive(ctx), numbers, day)
    ok = all(s.registered for s in found)
    if as_json:
        emit_json({"ok": ok, "results": [
            {"number": s.number, "on": s.on.isoformat(), "checked": s.checked,
             "registered": s.registered, "code": s.code, "registered_name": s.registered_name,
             "trade_name": s.trade_name, "kind": s.kind, "process": s.process,
             "registration_date": s.registration_date, "ended": s.ended,
             "register_as_of": s.register_as_of} for s in found]})
    else:
        for s in found:
            if not s.checked:
                click.echo(f"{s.number}  not checked (no register imported)")
                continue
            name = f"  {s.registered_name}" if s.registered_name else ""
            click.echo(f"{s.number}  {s.code} on {s.on.isoformat()}{name}"
                       f"  (register as of {s.register_as_of})")
    sys.exit(0 if ok else 1)


# -- profiles --------------------------------------------------------------------------------

@cli.command()
@click.argument("profile_id", required=False)
@json_option
@click.pass_context
def profiles(ctx: click.Context, profile_id: str | None, as_json: bool) -> None:
    """List ordinance profiles, or explain one."""
    from edoc.policy.profiles import ProfileSet, policies_dirs

    try:
        a = _archive(ctx)
        ps = a.profiles
    except ConfigError as exc:
        if exc.code != "ARCHIVE_NOT_FOUND":
            raise
        ps = ProfileSet.load(policies_dirs(None, Path.cwd()))
    chosen = [ps.get(profile_id)] if profile_id else list(ps)
    if as_json:
        emit_json({"ok": True, "profiles": [p.as_dict() for p in chosen]})
        return
    if not profile_id:
        for p in chosen:
            click.echo(f"{p.id:32} {p.title}")
        return
    p = chosen[0]
    d = p.as_dict()
    click.echo(f"{p.id}: {p.title}")
    click.echo(f"  basis: {p.basis}")
    for note in p.notes:
        click.echo(f"  note:  {note}")
    for section in ("capture", "deadline", "authenticity", "search", "retention"):
        vals = ", ".join(f"{k}={v}" for k, v in d[section].items()
                         if v not in (None, [], {}) and k != "by_entity")
        click.echo(f"  {section}: {vals or '-'}")
    for entity, rules in d["retention"]["by_entity"].items():
        click.echo(f"  retention for {entity}: {', '.join(rules) or '-'}")
    click.echo(f"  document types: {', '.join(p.document_types)}; media: "
               f"{', '.join(p.media_types)}")
    click.echo(f"  source: {p.source}")


# -- web viewer: serve, user -----------------------------------------------------------------

@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (localhost: put a TLS reverse proxy in front).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--behind-proxy", is_flag=True,
              help="Trust X-Forwarded-Proto/-For from --proxy-ip (Secure cookies behind TLS).")
@click.option("--proxy-ip", default="127.0.0.1", show_default=True, metavar="IP[,IP…]",
              help="The reverse proxy's address(es), trusted with --behind-proxy.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, behind_proxy: bool, proxy_ip: str) -> None:
    """Start the read-only web viewer (見読可能装置) of the archive.

    Accounts: 'edoc user add NAME --role auditor|staff|admin --password-stdin'.
    """
    import uvicorn

    from edoc.web.app import create_app

    app = create_app(_archive(ctx))
    info(f"edoc viewer on http://{host}:{port}/  (Ctrl-C to stop)")
    # No request log on stdout: who viewed what is in the archive's access log (audit-log),
    # and URLs carry search terms.
    uvicorn.run(app, host=host, port=port, proxy_headers=behind_proxy,
                forwarded_allow_ips=proxy_ip if behind_proxy else None, access_log=False,
                server_header=False, log_level="warning")


@cli.group("user")
def user_group() -> None:
    """Accounts of the web viewer (edoc serve)."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["auditor", "staff", "admin"]))
@click.option("--password-stdin", "password_stdin", is_flag=True, required=True,
              help="Read the password from standard input (never from the command line).")
@json_option
@click.pass_context
def user_add(ctx: click.Context, name: str, role: str, password_stdin: bool,
             as_json: bool) -> None:
    """Add a viewer account (argon2 hash in the catalog)."""
    from edoc.services.accounts import add_account

    if not password_stdin:
        raise ConfigError("give --password-stdin", code="USAGE_ERROR")
    password = sys.stdin.readline().rstrip("\r\n")
    a = _archive(ctx)
    acc = add_account(a, name, role, password, by=a.actor)
    if as_json:
        emit_json({"ok": True, "account": acc.as_dict()})
    else:
        info(f"added account {acc.name} ({acc.role})")


@user_group.command("list")
@json_option
@click.pass_context
def user_list(ctx: click.Context, as_json: bool) -> None:
    """List viewer accounts."""
    from edoc.services.accounts import list_accounts

    a = _archive(ctx)
    accs = list_accounts(a, by=a.actor)
    if as_json:
        emit_json({"ok": True, "accounts": [x.as_dict() for x in accs]})
        return
    for x in accs:
        state = "disabled" if x.disabled else (f"locked until {x.locked_until}"
                                               if x.locked_until else "active")
        click.echo(f"{x.name}  {x.role}  {state}  last login {x.last_login_at or '-'}")


@user_group.command("disable")
@click.argument("name")
@json_option
@click.pass_context
def user_disable(ctx: click.Context, name: str, as_json: bool) -> None:
    """Disable a viewer account and end its sessions."""
    from edoc.services.accounts import disable_account

    a = _archive(ctx)
    disable_account(a, name, by=a.actor)
    if as_json:
        emit_json({"ok": True, "disabled": name})
    else:
        info(f"disabled account {name}")
# -- the job queue: ingest --enqueue, worker, jobs (edoc/queue) -----------------------------

def _queue_ops() -> Any:
    """``edoc.queue.operations``, or a one-line error when the queue extra is missing."""
    try:
        from edoc.queue import operations
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the job queue needs {exc.name} (not installed)",
                          code="QUEUE_NOT_INSTALLED",
                          hint="pip install 'edoc[queue]'") from None
    return operations


def _enqueue_paths(files: tuple[str, ...]) -> list[str]:
    """FILES with each directory replaced by the regular files under it (sorted; names
    starting with a dot skipped)."""
    out: list[str] = []
    for f in files:
        p = Path(f)
        if p.is_dir():
            out += sorted(str(c) for c in p.rglob("*") if c.is_file() and not any(
                part.startswith(".") for part in c.relative_to(p).parts))
        else:
            out.append(f)
    return out


def _ingest_enqueue(a: Any, files: tuple[str, ...], profiles: tuple[str, ...],
                    manifest_csv: str | None, skip_existing: bool, as_json: bool,
                    opts: dict[str, Any]) -> NoReturn:
    from edoc.policy.values import printable_name

    enqueue = _queue_ops().enqueue
    if manifest_csv:
        from edoc.services.manifest_csv import read_manifest

        requests = list(read_manifest(Path(manifest_csv), default_profiles=profiles))
    else:
        requests = [_request(f, profiles, opts) for f in _enqueue_paths(files)]
    for pid in {p for r in requests if r.rejection is None
                for p in (r.profiles or (a.cfg.default_profile,))}:
        a.profiles.get(pid)  # an unknown profile is a usage error for the whole batch
    run = enqueue(a, requests, skip_existing=skip_existing, all_or_nothing=bool(manifest_csv))
    queued = sum(r.status == "queued" for r in run.results)
    if as_json:
        emit_json({"ok": run.ok, "batch": run.batch, "queued": queued,
                   "existing": sum(r.status == "exists" for r in run.results),
                   "failed": sum(r.status not in ("queued", "exists") for r in run.results),
                   "results": [r.as_dict() for r in run.results]})
    else:
        for r in run.results:
            if r.status == "queued":
                click.echo(f"job {r.job_id}  {printable_name(r.file)}")
            elif r.status == "exists":
                click.echo(f"{r.record_id}  {printable_name(r.file)}  already stored")
            elif r.error:
                info(f"{r.status}: {printable_name(r.file)}: {r.error['code']}: "
                     f"{r.error['message']}")
        info(f"{queued} queued, {len(run.results) - queued} not queued; "
             "run 'edoc worker' on any host to ingest them")
    sys.exit(0 if run.ok else 1)


@cli.command()
@click.option("--concurrency", type=click.IntRange(min=1, max=64), default=1,
              show_default=True, help="Jobs run at once by this process (threads).")
@click.option("--until-idle", is_flag=True,
              help="Exit 0 once no job is waiting or running (batch runs, tests).")
@click.option("--name", metavar="NAME", help="Worker name in logs (default HOST:PID).")
@click.option("--heartbeat", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
              metavar="SECONDS", help="Heartbeat interval; the jobs of a worker silent for "
              "three of them are retried by another.")
@json_option
@click.pass_context
def worker(ctx: click.Context, concurrency: int, until_idle: bool, name: str | None,
           heartbeat: float, as_json: bool) -> None:
    """Ingest the documents queued by 'edoc ingest --enqueue', on this host.

    Runs until SIGTERM/SIGINT (finishing the jobs in hand) or, with --until-idle, until the
    queue is empty. A job refused (a scan below the profile's dpi) ends as a failed job with
    its code; a transient failure (store, TSA, database) is retried with backoff.
    """
    ops = _queue_ops()
    a = ops.when_reachable(lambda: _archive(ctx))  # started during a failover: it waits
    a.cfg.roles.authorize(a.actor, "ingest")  # a worker ingests as its service account
    _ensure_passphrase(a)
    run = ops.run_worker(a, concurrency=concurrency, until_idle=until_idle, name=name,
                         heartbeat_s=heartbeat)
    if as_json:
        emit_json({"ok": True, "reconnects": run.restarts,
                   "stalled_retried": run.stalled_retried})
    else:
        info(f"worker stopped ({run.restarts} reconnects, "
             f"{run.stalled_retried} stalled jobs retried)")


@cli.group(invoke_without_command=True)
@json_option
@click.pass_context
def jobs(ctx: click.Context, as_json: bool) -> None:
    """The job queue: counts (queued, running, failed, done) and failed jobs with reasons."""
    if ctx.invoked_subcommand is not None:
        return
    from edoc.policy.values import printable_name

    st = _queue_ops().status(_archive(ctx))
    if as_json:
        emit_json({"ok": True, **st})
        return
    c = st["counts"]
    click.echo(f"queued {c['queued']}  running {c['running']}  failed {c['failed']}  "
               f"done {c['done']}")
    for f in st["failed"]:
        click.echo(f"failed job {f['id']}  {printable_name(f['file'] or '?')}  "
                   f"{f['code']}: {printable_name(f['message'])}")
    if st["failed"]:
        info("hint: fix the cause, then 'edoc jobs retry ID' or 'edoc jobs retry --all-failed'")


@jobs.command("retry")
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="Every failed ingest job.")
@json_option
@click.pass_context
def jobs_retry(ctx: click.Context, job_ids: tuple[int, ...], all_failed: bool,
               as_json: bool) -> None:
    """Put failed jobs back on the queue (their documents were kept)."""
    retry = _queue_ops().retry
    if bool(job_ids) == all_failed:
        raise ConfigError("give job ids or --all-failed", code="USAGE_ERROR")
    a = _archive(ctx)
    a.cfg.roles.authorize(a.actor, "ingest")
    ids = retry(a, job_ids, all_failed=all_failed)
    if as_json:
        emit_json({"ok": True, "retried": ids})
    else:
        info(f"{len(ids)} job(s) queued again" + (f": {', '.join(map(str, ids))}" if ids
                                                   else ""))


def _stderr_of_our_own() -> None:
    """Write edoc's own messages to a duplicate of file descriptor 2.

    While the readability gate decodes a TIFF it points fd 2 itself at a temporary file, to
    catch what libtiff prints there behind Python's back
    (``edoc.inspection.raster``). With files
    in flight (``ingest --jobs``) another thread may print a progress line or a warning in
    that window; written to the duplicate, it still reaches the terminal or log."""
    try:
        fd = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to keep apart
        return
    old = sys.stderr
    if old is None:
        os.close(fd)
        return
    sys.stderr = io.TextIOWrapper(io.FileIO(fd, "w"), encoding=old.encoding,
                                  errors=old.errors, line_buffering=True, write_through=True)


def main() -> None:
    _stderr_of_our_own()
    cli(prog_name="edoc")


if __name__ == "__main__":
    main()
