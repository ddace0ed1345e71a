"""Property tests (Hypothesis) on the code that reads untrusted bytes and text.

* ``inspection.detect_media_type`` + ``inspection.inspect`` on arbitrary bytes and on
  mutated valid PDFs and images: only ``InputError`` (and its subclass ``ProfileViolation``)
  may escape, with a one-line message; never another exception, in bounded time and memory.
* The PDF decompression-bomb guard: for data under a random chain of PDF filters, the
  measured decoded size is the data's size — the same bytes qpdf decodes — and the limits
  refuse exactly what exceeds them.
* ``manifest_csv.read_manifest`` on arbitrary bytes and on generated CSV text: ``InputError``
  or requests, and every accepted path lies inside the manifest's directory.
* ``values.parse_amount`` / ``parse_date`` / ``clean_text``: only ``InputError``; amounts are
  ints no further from zero than ``MAX_AMOUNT``; what was accepted round-trips.

Example counts keep the file well under a minute on two cores (``deadline=None``: the first
inspection of a PDF pays for pdfium's start-up).
"""

from __future__ import annotations

import base64
import csv
import io
import re
import resource
import tempfile
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pikepdf
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edoc import inspection
from edoc.errors import EdocError, InputError
from edoc.inspection.pdf_streams import pdf_stream_sizes
from edoc.policy.values import MAX_AMOUNT, clean_text, parse_amount, parse_date
from edoc.services.manifest_csv import COLUMNS, read_manifest
from tests import samples
from tests.hostile import good_scan, raw_pdf

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
THOROUGH = settings(FAST, max_examples=400)

#: How much the process's peak RSS may grow while inspecting fuzzed documents: a decoded
#: bomb would take gigabytes; the largest legitimate decode of these small seeds a few MiB.
RSS_GROWTH_LIMIT_MIB = 400


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """One directory for the whole module (Hypothesis runs many examples per test call)."""
    with tempfile.TemporaryDirectory(prefix="edoc-fuzz-") as d:
        yield Path(d)


def _write(folder: Path, data: bytes, name: str = "input.bin") -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def inspect_bytes(folder: Path, data: bytes) -> inspection.Readability | None:
    """Sniff and inspect ``data``; None when it was refused with an ``InputError``.

    Anything else escaping fails the test: another EdocError (e.g. a ConfigError) or any
    other exception type (a parser bug)."""
    path = _write(folder, data)
    try:
        media_type = inspection.detect_media_type(path)
        measured = inspection.inspect(path, media_type)
    except InputError as exc:
        assert "\n" not in str(exc) and "\r" not in str(exc), repr(str(exc))
        assert exc.code.isupper() and exc.code.replace("_", "").isalnum()
        return None
    except EdocError as exc:  # pragma: no cover - a failure report
        pytest.fail(f"{type(exc).__name__} {exc.code} escaped: {exc}")
    assert measured.pages == len(measured.page_measures) or measured.pages == 0
    assert isinstance(measured.to_manifest(), dict)
    return measured


# -- readability: arbitrary bytes ---------------------------------------------------------------

MAGIC = [b"%PDF-1.7\n", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*",
         b"GIF89a", b"PK\x03\x04", b"<?xml ", b"\xef\xbb\xbf", b"\xff\xfe"]


@THOROUGH
@given(prefix=st.sampled_from([b"", *MAGIC]), body=st.binary(max_size=4096))
def test_arbitrary_bytes_are_measured_or_refused(scratch: Path, prefix: bytes,
                                                 body: bytes) -> None:
    inspect_bytes(scratch, prefix + body)


# -- readability: mutated valid documents -------------------------------------------------------

@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Small valid documents of every kind the gate parses."""
    d = tmp_path_factory.mktemp("seeds")
    out: dict[str, bytes] = {}
    out["jpeg"] = good_scan(d / "s.jpg", 1, dpi=100, fmt="JPEG").read_bytes()
    out["png"] = good_scan(d / "s.png", 2, dpi=100).read_bytes()
    out["tiff"] = samples.scan_image(d / "s.tif", dpi=[100, 120], mode=["RGB", "1"],
                                     paper="30x40mm", fmt="TIFF").read_bytes()
    out["text-pdf"] = samples.text_pdf(d / "t.pdf", "seed", pages=2).read_bytes()
    out["scan-pdf"] = samples.scan_pdf(d / "p.pdf", dpi_per_page=[100, 120], paper="30x40mm",
                                       strips=2).read_bytes()
    out["active-pdf"] = samples.pdf_with_active_content(
        d / "a.pdf", launch=True, embedded_file=True).read_bytes()
    with pikepdf.open(io.BytesIO(out["scan-pdf"])) as pdf:
        buf = io.BytesIO()
        pdf.save(buf, object_stream_mode=pikepdf.ObjectStreamMode.generate)
        out["objstm-pdf"] = buf.getvalue()
    form = b"q 0.5 0 0 0.5 0 0 cm /Fm Do Q BT /F1 9 Tf (x) Tj ET"
    out["classic-pdf"] = raw_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R "
        b"/Resources << /XObject << /Fm 5 0 R >> /Font << /F1 6 0 R >> >> >>",
        _pdf_stream(b"/Filter /FlateDecode", zlib.compress(b"/Fm Do " * 3)),
        _pdf_stream(b"/Type /XObject /Subtype /Form /BBox [0 0 200 200] "
                    b"/Resources << /XObject << /Fm 5 0 R >> >> /Filter /ASCIIHexDecode",
                    form.hex().encode() + b">"),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"])
    return out


def _pdf_stream(dictionary: bytes, data: bytes) -> bytes:
    return (b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data
            + b"\nendstream")


#: Fragments that steer mutations into the parsers' interesting states.
TOKENS = [b"obj", b"endobj", b"stream\n", b"endstream", b"<<", b">>", b"[", b"]", b"(", b")",
          b"\\", b"#", b" 0 R", b"/Filter /FlateDecode", b"/Filter [/ASCIIHexDecode "
          b"/FlateDecode]", b"/LZWDecode", b"/RunLengthDecode", b"/ASCII85Decode",
          b"/Length 0", b"/Length 99999999999", b"/Length 5 0 R", b"/Type /Page",
          b"/Type /Pages", b"/Kids [3 0 R 3 0 R]", b"/Parent 3 0 R", b"/Count -1",
          b"/Width 4294967295", b"/Height 65536", b"/Subtype /Form", b"/Subtype /Image",
          b"/Type /ObjStm", b"/N 999999", b"xref", b"trailer", b"startxref\n0\n", b"%%EOF",
          b"/Contents", b"/Resources", b"/XObject", b"Do", b"q", b"Q", b"cm", b"1e308",
          b"-0", b"NaN", b"/MediaBox [0 0 0 0]", b"/UserUnit 0", b"\xff\xd8\xff\xc0",
          b"\xff\xd9", b"IHDR", b"IDAT", b"IEND", b"\x00\x00\xff\xff", b"II*\x00"]


@st.composite
def mutations(draw: st.DrawFn, seeds: dict[str, bytes]) -> bytes:
    data = bytearray(seeds[draw(st.sampled_from(sorted(seeds)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "token", "repeat", "delete"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "token":
            token = draw(st.sampled_from(TOKENS))
            overwrite = draw(st.booleans())
            data[pos:pos + (len(token) if overwrite else 0)] = token
        elif kind == "repeat":
            piece = bytes(data[pos:pos + draw(st.integers(1, 256))])
            data[pos:pos] = piece * draw(st.integers(1, 64))
        else:
            del data[pos:pos + draw(st.integers(1, 512))]
    return bytes(data)


_OBJECT = re.compile(rb"(\d+) 0 obj\n?(.*?)\n?endobj", re.DOTALL)
_STREAM_BODY = re.compile(rb"(.*?)stream\n(.*)\nendstream", re.DOTALL)


def pdf_objects(data: bytes) -> tuple[list[bytes], int]:
    """A PDF as its objects 1…n (uncompressed, renumbered by qpdf) and its catalog's number,
    so that a mutated object can be put back into a file with a correct xref table — byte
    mutations of a whole file mostly break the xref, which stops parsing at the door."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        buf = io.BytesIO()
        pdf.save(buf, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none,
                 object_stream_mode=pikepdf.ObjectStreamMode.disable)
    text = buf.getvalue()
    objects = {int(m.group(1)): m.group(2) for m in _OBJECT.finditer(text)}
    root = int(re.search(rb"/Root (\d+) 0 R", text).group(1))  # type: ignore[union-attr]
    assert sorted(objects) == list(range(1, len(objects) + 1))
    return [objects[n] for n in sorted(objects)], root


def _with_length(body: bytes) -> bytes:
    """``body`` with its stream's /Length set to its data's length, if it is a stream."""
    found = _STREAM_BODY.fullmatch(body)
    if found is None:
        return body
    head, data = found.groups()
    head = re.sub(rb"/Length \d+( 0 R)?", b"/Length %d" % len(data), head, count=1)
    return head + b"stream\n" + data + b"\nendstream"


@st.composite
def mutated_pdfs(draw: st.DrawFn, seeds: dict[str, bytes]) -> bytes:
    name = draw(st.sampled_from([n for n in sorted(seeds) if n.endswith("-pdf")]))
    objects, root = pdf_objects(seeds[name])
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(0, len(objects) - 1))
        body = draw(mutations({"object": objects[n]}))
        if draw(st.booleans()):
            body = _with_length(body)
        objects[n] = body
    return raw_pdf(objects, root=root)


def _inspect_within_memory(scratch: Path, data: bytes) -> None:
    """Measured or refused (``inspect_bytes``), and the peak RSS grew by less than the limit."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    inspect_bytes(scratch, data)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < RSS_GROWTH_LIMIT_MIB


@THOROUGH
@given(data=st.data())
def test_mutated_pdf_objects_are_measured_or_refused(scratch: Path, seeds: dict[str, bytes],
                                                     data: st.DataObject) -> None:
    _inspect_within_memory(scratch, data.draw(mutated_pdfs(seeds)))


@THOROUGH
@given(data=st.data())
def test_mutated_documents_are_measured_or_refused(scratch: Path, seeds: dict[str, bytes],
                                                   data: st.DataObject) -> None:
    _inspect_within_memory(scratch, data.draw(mutations(seeds)))


def test_the_seeds_themselves_pass(scratch: Path, seeds: dict[str, bytes]) -> None:
    """The mutations start from documents the gate accepts (else the fuzzing is shallow),
    also once taken apart into objects and put back together."""
    for name, data in seeds.items():
        measured = inspect_bytes(scratch, data)
        assert measured is not None and measured.pages >= 1, name
        if name.endswith("-pdf"):
            objects, root = pdf_objects(data)
            again = inspect_bytes(scratch, raw_pdf(objects, root=root))
            assert again is not None and again.pages == measured.pages, name


# -- the decompression-bomb guard against qpdf ---------------------------------------------------

def lzw_encode(data: bytes) -> bytes:
    """LZWDecode's encoder (ISO 32000-1 §7.4.4.2): MSB-first codes of 9–12 bits, EarlyChange 1,
    a clear code first and whenever the table is nearly full, EOD last."""
    out = bytearray()
    acc = bits = 0
    width = 9

    def emit(code: int) -> None:
        nonlocal acc, bits
        acc = (acc << width) | code
        bits += width
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
        acc &= (1 << bits) - 1

    table = {bytes((i,)): i for i in range(256)}
    next_code = 258
    emit(256)
    word = b""
    for byte in data:
        grown = word + bytes((byte,))
        if grown in table:
            word = grown
            continue
        emit(table[word])
        table[grown] = next_code
        next_code += 1
        # The decoder's table is one entry behind the encoder's; with EarlyChange 1 it widens
        # its codes when its size + 1 reaches 2**width.
        if next_code >= 1 << width and width < 12:
            width += 1
        if next_code >= 4093:
            emit(256)
            table = {bytes((i,)): i for i in range(256)}
            next_code, width = 258, 9
        word = bytes((byte,))
    if word:
        emit(table[word])
        if next_code + 1 >= 1 << width and width < 12:  # the decoder adds one more entry
            width += 1
    emit(257)
    if bits:
        out.append((acc << (8 - bits)) & 0xFF)
    return bytes(out)


def run_length_encode(data: bytes) -> bytes:
    """RunLengthDecode's encoder (§7.4.5): runs of 2–128 equal bytes, literals otherwise."""
    out = bytearray()
    i = 0
    while i < len(data):
        run = 1
        while i + run < len(data) and run < 128 and data[i + run] == data[i]:
            run += 1
        if run >= 2:
            out += bytes((257 - run, data[i]))
            i += run
            continue
        j = i + 1
        while j < len(data) and j - i < 128 and (j + 1 >= len(data) or data[j] != data[j + 1]):
            j += 1
        out += bytes((j - i - 1,)) + data[i:j]
        i = j
    return bytes(out + b"\x80")


#: name → (encoder, /Filter name); a chain applies encoders last filter first.
ENCODERS: dict[str, tuple[Callable[[bytes], bytes], bytes]] = {
    "flate": (lambda b: zlib.compress(b, 6), b"/FlateDecode"),
    "hex": (lambda b: b.hex().encode() + b">", b"/ASCIIHexDecode"),
    "a85": (lambda b: base64.a85encode(b) + b"~>", b"/ASCII85Decode"),
    "rle": (run_length_encode, b"/RunLengthDecode"),
    "lzw": (lzw_encode, b"/LZWDecode"),
}

payloads = st.one_of(
    st.binary(max_size=3000),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=8), st.integers(1, 20_000)),
    st.integers(0, 200_000).map(bytes),  # long runs of zeros: what bombs are made of
)


def _chain_pdf(data: bytes, chain: list[str]) -> bytes:
    encoded = data
    for name in reversed(chain):
        encoded = ENCODERS[name][0](encoded)
    filters = b"[" + b" ".join(ENCODERS[n][1] for n in chain) + b"]"
    return raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                    b"<< /Type /Pages /Kids [] /Count 0 >>",
                    _pdf_stream(b"/Filter " + filters, encoded)])


@FAST
@given(data=payloads, chain=st.lists(st.sampled_from(sorted(ENCODERS)), min_size=1,
                                     max_size=3))
def test_measured_stream_size_is_what_qpdf_decodes(scratch: Path, data: bytes,
                                                   chain: list[str]) -> None:
    path = _write(scratch, _chain_pdf(data, chain), "chain.pdf")
    with pikepdf.open(path) as pdf:
        decoded = pdf.get_object((3, 0)).read_bytes(pikepdf.StreamDecodeLevel.specialized)
        assert decoded == data  # the encoders are right
    assert pdf_stream_sizes(path)[(3, 0)] == len(data)


@FAST
@given(data=payloads, chain=st.lists(st.sampled_from(sorted(ENCODERS)), min_size=1,
                                     max_size=2), slack=st.integers(-5, 5))
def test_stream_limit_refuses_exactly_what_exceeds_it(scratch: Path, data: bytes,
                                                      chain: list[str], slack: int) -> None:
    limit = max(0, len(data) + slack)
    path = _write(scratch, _chain_pdf(data, chain), "limit.pdf")
    if len(data) > limit:
        with pytest.raises(InputError) as caught:
            pdf_stream_sizes(path, limit=limit)
        assert caught.value.code == "PDF_STREAM_TOO_LARGE"
    else:
        assert pdf_stream_sizes(path, limit=limit)[(3, 0)] == len(data)


# -- CSV manifests ---------------------------------------------------------------------------

cells = st.one_of(st.text(max_size=30), st.sampled_from(
    ["ok.png", "../x.png", "/etc/passwd", "a/../../b", "=1+1", "-5", "-2+3", "@x", "",
     "2024-04-01", "¥1,000", '"', "\r\n", "sub/ok.png", "link.png"]))


@st.composite
def csv_documents(draw: st.DrawFn) -> bytes:
    header = draw(st.lists(st.one_of(st.sampled_from(COLUMNS), st.text(max_size=8)),
                           min_size=1, max_size=6))
    rows = draw(st.lists(st.lists(cells, max_size=len(header) + 1), max_size=6))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp932", "utf-16"]))
    return buf.getvalue().encode(encoding, "replace")


@pytest.fixture(scope="module")
def manifest_dir(scratch: Path) -> Path:
    d = scratch / "manifests" / "inbox"
    (d / "sub").mkdir(parents=True)
    good_scan(d / "ok.png", 5)
    good_scan(d / "sub" / "ok.png", 6)
    (d / "link.png").symlink_to("/etc/hostname")
    return d


@THOROUGH
@given(raw=st.one_of(st.binary(max_size=2000), csv_documents()))
def test_manifests_are_read_or_refused(manifest_dir: Path, raw: bytes) -> None:
    path = _write(manifest_dir, raw, "m.csv")
    try:
        requests = read_manifest(path, default_profiles=("general",))
    except InputError as exc:
        assert "\n" not in exc.message
        return
    base = manifest_dir.resolve()
    for req in requests:
        if req.rejection is not None:
            assert isinstance(req.rejection, InputError)
            continue
        assert Path(req.path).is_relative_to(base), req.path  # nothing escapes
        for value in (req.counterparty, req.amount, req.date, req.ledger_ref):
            assert not value or value[0] not in "=+@"


# -- values -----------------------------------------------------------------------------------

@THOROUGH
@given(st.one_of(st.text(), st.integers(),
                 st.from_regex(r"[-−▲]?[¥\\]?[-−▲]?[0-9０-９,，]{0,25}円?")))
def test_parse_amount_gives_an_int_within_the_limit_or_input_error(value: str | int) -> None:
    try:
        amount = parse_amount(value, "--amount")
    except InputError as exc:
        assert exc.code == "BAD_AMOUNT" and "\n" not in exc.message
        return
    assert type(amount) is int and -MAX_AMOUNT <= amount <= MAX_AMOUNT


@FAST
@given(st.integers(0, MAX_AMOUNT))
def test_amounts_round_trip_in_every_accepted_spelling(n: int) -> None:
    spellings = [str(n), f"{n:,}", f"¥{n:,}", f"{n}円",
                 unicodedata.normalize("NFKC", str(n)).translate(
                     {ord(c): 0xFF10 + int(c) for c in "0123456789"})]
    assert {parse_amount(s) for s in spellings} == {n}
    # below zero (a return or correction): the sign before or after ¥, and the 三角
    negatives = [f"-{n}", f"¥-{n:,}", f"-¥{n:,}", f"▲{n:,}", f"△{n}円", f"−{n}", f"－{n}"]
    assert {parse_amount(s) for s in negatives} == {-n}


def test_amounts_beyond_the_limit_and_huge_numbers_are_refused() -> None:
    for value in (str(MAX_AMOUNT + 1), "9" * 5000, MAX_AMOUNT + 1, "١٢٣",
                  f"-{MAX_AMOUNT + 1}", -MAX_AMOUNT - 1, "--5", "-", "▲-5"):
        with pytest.raises(InputError):
            parse_amount(value)


@THOROUGH
@given(st.text())
def test_parse_date_gives_a_date_or_input_error(value: str) -> None:
    try:
        parsed = parse_date(value, "--date")
    except InputError as exc:
        assert exc.code == "BAD_DATE" and "\n" not in exc.message
        return
    assert isinstance(parsed, date)


@FAST
@given(st.dates())
def test_dates_round_trip(d: date) -> None:
    assume(d.year >= 1)
    assert parse_date(d.isoformat(), "--date") == d


@THOROUGH
@given(st.text())
def test_clean_text_keeps_nothing_that_breaks_a_line_or_json(value: str) -> None:
    try:
        text = clean_text(value, "--counterparty")
    except InputError as exc:
        assert exc.code == "BAD_VALUE"
        return
    assert text == text.strip() and text
    assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in text)
    text.encode("utf-8")  # storable and printable as UTF-8
