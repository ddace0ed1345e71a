"""The readability gate: media type sniffing, measurements of scans and PDFs, capture rules."""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pikepdf
import pytest
from PIL import Image, TiffImagePlugin

from edoc.errors import ConfigError, EdocError, InputError, ProfileViolation, UsageError
from edoc.inspection import (
    CSV,
    JPEG,
    MANIFEST_PAGES,
    PDF,
    PNG,
    TIFF,
    XML,
    PageMeasure,
    Readability,
    detect_media_type,
    inspect,
)
from edoc.policy.capture import CaptureRules, check_capture
from edoc.policy.paper import paper_size_inches
from tests.samples import (
    bomb_png,
    encrypted_pdf,
    pdf_with_active_content,
    pixel_size,
    scan_image,
    scan_pdf,
    small_jpeg,
    text_pdf,
)

# The profiles' capture rules as the law states them (REQUIREMENTS.md): 重要書類 200 dpi and
# 24-bit colour; 一般書類 200 dpi and 8-bit gray; METI 150 dpi colour/gray, 200 dpi bilevel.
IMPORTANT = CaptureRules(min_dpi=200, colour="rgb24")
GENERAL = CaptureRules(min_dpi=200, colour="gray8")
METI = CaptureRules(min_dpi=150, min_dpi_bilevel=200, colour="any")

#: Small paper (A7) keeps the generated scans small; the dpi is what matters.
SMALL = "74x105mm"


def measure(path: Path, paper_size: str | None = None) -> Readability:
    return inspect(path, detect_media_type(path), paper_size=paper_size)


def approx(
    expected: float | list[int], *, rel: float | None = None, abs: float | None = None
) -> Any:
    """``pytest.approx`` typed for comparisons inside tuples."""
    return pytest.approx(expected, rel=rel, abs=abs)


def listed_pages(manifest: dict[str, object]) -> list[object]:
    return [p["page"] for p in cast(list[dict[str, object]], manifest["page_measures"])]


def violation(r: Readability, rules: CaptureRules, profile: str = "p") -> ProfileViolation:
    with pytest.raises(ProfileViolation) as info:
        check_capture(r, rules, profile)
    return info.value


# ---- paper sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mm"),
    [
        ("A4", (210, 297)),
        ("a4", (210, 297)),
        ("A3", (297, 420)),
        ("A5", (148, 210)),
        ("A6", (105, 148)),
        ("B4", (257, 364)),  # JIS B4, not ISO B4 (250×353)
        ("b5", (182, 257)),  # JIS B5, not ISO B5 (176×250)
        ("Letter", (215.9, 279.4)),
        ("LEGAL", (215.9, 355.6)),
        ("210x297mm", (210, 297)),
        ("297X210MM", (210, 297)),  # landscape given: returned portrait
        ("80 x 200 mm", (80, 200)),
        ("8.5x11in", (215.9, 279.4)),
    ],
)
def test_paper_sizes_in_inches(name: str, mm: tuple[float, float]) -> None:
    short, long = paper_size_inches(name)
    assert short == approx(mm[0] / 25.4, abs=1e-6)
    assert long == approx(mm[1] / 25.4, abs=1e-6)


@pytest.mark.parametrize("name", ["A9", "B5ISO", "", "210x297", "0x297mm", "5x5mm", "x297mm"])
def test_unknown_paper_size_is_a_usage_error(name: str) -> None:
    with pytest.raises(UsageError) as info:
        paper_size_inches(name)
    assert info.value.code == "PAPER_SIZE_UNKNOWN"
    assert info.value.exit_code == 2


# ---- media types ----------------------------------------------------------------------------


def test_media_type_is_sniffed_from_content_not_name(tmp_path: Path) -> None:
    jpeg = scan_image(tmp_path / "scan.pdf", dpi=100, paper=SMALL, fmt="JPEG")
    png = scan_image(tmp_path / "scan.txt", dpi=100, paper=SMALL, fmt="PNG")
    tiff = scan_image(tmp_path / "scan.jpg", dpi=100, paper=SMALL, fmt="TIFF")
    pdf = text_pdf(tmp_path / "invoice.png", "hello")
    assert detect_media_type(jpeg) == JPEG
    assert detect_media_type(png) == PNG
    assert detect_media_type(tiff) == TIFF
    assert detect_media_type(pdf) == PDF
    # A JPEG named .pdf is measured as the JPEG it is.
    assert measure(jpeg).page_measures[0].compression == "jpeg"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"%PDF-1.7\n", PDF),
        (b"\r\n\r\n%PDF-1.4\n", PDF),  # junk before the header, within the first 1024 bytes
        (b"MM\x00*\x00\x00\x00\x08", TIFF),  # big-endian TIFF
        (b"GIF89a\x01\x00", "image/gif"),
        (b"PK\x03\x04rest", "application/zip"),
        (b'<?xml version="1.0"?><Invoice/>', XML),
        (b"\xef\xbb\xbf<?xml version='1.0'?><a/>", XML),
        ('<?xml version="1.0" encoding="UTF-16"?><a/>'.encode("utf-16"), XML),
        (b"  \n<Invoice xmlns='urn:x'><ID>1</ID></Invoice>", XML),
        (b'date,amount,counterparty\n2024-04-01,1000,ACME\n2024-04-02,20,"A, B"\n', CSV),
        ("日付,金額,取引先\n2024-04-01,1000,株式会社テスト\n".encode("cp932"), CSV),
        ("日付,金額\n2024-04-01,1000\n".encode("utf-8-sig"), CSV),
        (b"just a note, nothing tabular\nsecond line\n", "text/plain"),
        (b"hello\n", "text/plain"),
        (b"tab\there, form feed\x0c and CRLF\r\n", "text/plain"),  # the allowed controls
        # valid UTF-8 with one control character in it is data, not text
        (b"hello\x00world\n", "application/octet-stream"),
        (b"hello\x0bworld\n", "application/octet-stream"),
        (b"hello\x1fworld\n", "application/octet-stream"),
        (b"hello\x7fworld\n", "application/octet-stream"),
        (bytes(range(256)), "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_media_type_by_magic(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "file.dat"
    path.write_bytes(content)
    assert detect_media_type(path) == expected


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        detect_media_type(tmp_path / "nowhere.pdf")
    assert info.value.code == "FILE_UNREADABLE"
    assert str(tmp_path) not in str(info.value)


# ---- images: dpi × colour × format against the three rule sets -----------------------------

DPIS = (150, 200, 300)
MODES = ("RGB", "L", "1")
FORMATS = ("JPEG", "PNG", "TIFF")
CASES = [
    (dpi, mode, fmt)
    for dpi in DPIS
    for mode in MODES
    for fmt in FORMATS
    if not (fmt == "JPEG" and mode == "1")  # JPEG has no bilevel mode
]


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, str, str], Path]:
    folder = tmp_path_factory.mktemp("scans")
    return {
        (dpi, mode, fmt): scan_image(
            folder / f"{dpi}-{mode}.{fmt.lower()}", dpi=dpi, mode=mode, fmt=fmt, paper=SMALL
        )
        for dpi, mode, fmt in CASES
    }


EXPECTED_COLOUR = {"RGB": ("rgb24", 8), "L": ("gray8", 8), "1": ("bilevel", 1)}
EXPECTED_COMPRESSION = {"JPEG": ("jpeg", True), "PNG": ("png/flate", False)}


@pytest.mark.parametrize(("dpi", "mode", "fmt"), CASES)
def test_image_measurements(
    scans: dict[tuple[int, str, str], Path], dpi: int, mode: str, fmt: str
) -> None:
    r = measure(scans[dpi, mode, fmt])
    assert (r.pages, r.rendered, r.active_content) == (1, True, ())
    m = r.page_measures[0]
    assert m.kind == "image"
    assert (m.width_px, m.height_px) == pixel_size(dpi, SMALL)
    assert m.dpi == approx(dpi, abs=0.05)
    assert m.dpi_source == "metadata"
    assert (m.colour, m.bits_per_component) == EXPECTED_COLOUR[mode]
    if fmt == "TIFF":
        expected = ("ccitt", False) if mode == "1" else ("lzw", False)
    else:
        expected = EXPECTED_COMPRESSION[fmt]
    assert (m.compression, m.lossy) == expected


def _expected_code(rules: str, dpi: int, mode: str) -> str | None:
    """The outcome each rule set must give, written out from the law's table."""
    if rules == "important":  # 200 dpi, 24-bit colour
        if dpi < 200:
            return "SCAN_RESOLUTION_TOO_LOW"
        return None if mode == "RGB" else "SCAN_COLOUR_INSUFFICIENT"
    if rules == "general":  # 200 dpi, 8-bit gray allowed
        if dpi < 200:
            return "SCAN_RESOLUTION_TOO_LOW"
        return None if mode in ("RGB", "L") else "SCAN_COLOUR_INSUFFICIENT"
    # METI: colour/gray 150 dpi, bilevel 200 dpi
    needed = 200 if mode == "1" else 150
    return None if dpi >= needed else "SCAN_RESOLUTION_TOO_LOW"


RULES = {"important": IMPORTANT, "general": GENERAL, "meti": METI}


@pytest.mark.parametrize("rules", sorted(RULES))
@pytest.mark.parametrize(("dpi", "mode", "fmt"), CASES)
def test_capture_rules_on_images(
    scans: dict[tuple[int, str, str], Path], rules: str, dpi: int, mode: str, fmt: str
) -> None:
    r = measure(scans[dpi, mode, fmt])
    expected = _expected_code(rules, dpi, mode)
    if expected is None:
        check_capture(r, RULES[rules], rules)
    else:
        assert violation(r, RULES[rules], rules).code == expected


def test_resolution_message_names_measured_and_required(
    scans: dict[tuple[int, str, str], Path],
) -> None:
    err = violation(measure(scans[150, "RGB", "PNG"]), IMPORTANT, "nta-scan-important")
    assert str(err) == (
        "SCAN_RESOLUTION_TOO_LOW: page 1 is 150 dpi; nta-scan-important requires 200"
    )
    assert err.exit_code == 1


def test_colour_message_names_measured_and_required(
    scans: dict[tuple[int, str, str], Path],
) -> None:
    err = violation(measure(scans[300, "L", "JPEG"]), IMPORTANT, "nta-scan-important")
    assert str(err) == (
        "SCAN_COLOUR_INSUFFICIENT: page 1 is gray8; "
        "nta-scan-important requires rgb24 (24-bit colour)"
    )


def test_bilevel_requirement_named_for_meti(scans: dict[tuple[int, str, str], Path]) -> None:
    err = violation(measure(scans[150, "1", "TIFF"]), METI, "meti")
    assert "page 1 is 150 dpi" in str(err)
    assert "requires 200" in str(err)


def test_a4_at_200_dpi_is_1654_by_2339_and_passes(tmp_path: Path) -> None:
    path = scan_image(tmp_path / "a4.jpg", dpi=200, paper="A4")
    m = measure(path).page_measures[0]
    assert (m.width_px, m.height_px) == (1654, 2339)
    check_capture(measure(path), IMPORTANT, "nta-scan-important")
    # The same pixels with a placeholder resolution, measured against A4: still 200 dpi.
    placeholder = scan_image(tmp_path / "a4-72.jpg", dpi=200, paper="A4", metadata_dpi=72)
    r = measure(placeholder, paper_size="A4")
    assert r.page_measures[0].dpi_source == "paper-size"
    check_capture(r, IMPORTANT, "nta-scan-important")


@pytest.mark.parametrize(
    ("mode", "fmt", "colour", "bits"),
    [
        ("CMYK", "JPEG", "cmyk", 8),
        ("P", "PNG", "palette", 4),  # 16 colours: the PNG is written at 4 bits an index
        ("I;16", "PNG", "gray16", 16),
        ("I;16", "TIFF", "gray16", 16),
        ("RGBA", "PNG", "rgb24", 8),
    ],
)
def test_other_colour_modes(tmp_path: Path, mode: str, fmt: str, colour: str, bits: int) -> None:
    path = scan_image(tmp_path / f"x.{fmt.lower()}", dpi=200, mode=mode, fmt=fmt, paper=SMALL)
    m = measure(path).page_measures[0]
    assert (m.colour, m.bits_per_component) == (colour, bits)


def test_palette_is_not_colour_nor_gray_but_is_at_least_bilevel(tmp_path: Path) -> None:
    r = measure(scan_image(tmp_path / "p.png", dpi=300, mode="P", fmt="PNG", paper=SMALL))
    assert violation(r, IMPORTANT).code == "SCAN_COLOUR_INSUFFICIENT"
    assert violation(r, GENERAL).code == "SCAN_COLOUR_INSUFFICIENT"
    check_capture(r, CaptureRules(min_dpi=200, colour="bilevel"), "p")


def test_cmyk_and_gray16_satisfy_colour_and_gray(tmp_path: Path) -> None:
    cmyk = measure(scan_image(tmp_path / "c.jpg", dpi=200, mode="CMYK", paper=SMALL))
    check_capture(cmyk, IMPORTANT, "p")
    gray16 = measure(scan_image(tmp_path / "g.png", dpi=200, mode="I;16", fmt="PNG", paper=SMALL))
    check_capture(gray16, GENERAL, "p")
    assert violation(gray16, IMPORTANT).code == "SCAN_COLOUR_INSUFFICIENT"


def test_lossy_compression_refused_when_the_profile_says_so(
    scans: dict[tuple[int, str, str], Path],
) -> None:
    lossless_only = CaptureRules(min_dpi=200, colour="rgb24", lossy_allowed=False)
    err = violation(measure(scans[300, "RGB", "JPEG"]), lossless_only, "strict")
    assert err.code == "SCAN_LOSSY_NOT_ALLOWED"
    assert "page 1 is jpeg (lossy)" in str(err)
    check_capture(measure(scans[300, "RGB", "PNG"]), lossless_only, "strict")
    check_capture(measure(scans[300, "RGB", "TIFF"]), lossless_only, "strict")


# ---- images: resolution sources -------------------------------------------------------------


@pytest.mark.parametrize("placeholder", [72, 96])
def test_placeholder_resolution_needs_paper_size(tmp_path: Path, placeholder: int) -> None:
    path = scan_image(tmp_path / "phone.jpg", dpi=200, paper="A6", metadata_dpi=placeholder)
    with pytest.raises(InputError) as info:
        measure(path)
    assert info.value.code == "RESOLUTION_UNKNOWN"
    assert f"{placeholder} dpi" in str(info.value)
    assert info.value.hint is not None and "--paper-size" in info.value.hint
    m = measure(path, paper_size="A6").page_measures[0]
    assert (m.dpi_source, m.dpi) == ("paper-size", approx(200, rel=0.005))
    # The same pixels said to come from A4 paper: a coarser scan (A6 is half of A4's sides).
    assert measure(path, paper_size="A4").page_measures[0].dpi == approx(100, rel=0.005)


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_resolution_needs_paper_size(tmp_path: Path, fmt: str) -> None:
    path = scan_image(tmp_path / f"x.{fmt.lower()}", dpi=150, fmt=fmt, paper=SMALL, write_dpi=False)
    with pytest.raises(InputError) as info:
        measure(path)
    assert info.value.code == "RESOLUTION_UNKNOWN"
    assert "no resolution" in str(info.value)
    assert measure(path, paper_size=SMALL).page_measures[0].dpi == approx(150, rel=0.01)


def test_paper_size_matches_a_landscape_scan(tmp_path: Path) -> None:
    path = scan_image(
        tmp_path / "l.png", dpi=200, fmt="PNG", paper="A6", landscape=True, write_dpi=False
    )
    m = measure(path, paper_size="A6").page_measures[0]
    assert m.width_px is not None and m.height_px is not None and m.width_px > m.height_px
    assert m.dpi == approx(200, rel=0.005)


def test_metadata_wins_over_paper_size(tmp_path: Path) -> None:
    path = scan_image(tmp_path / "x.jpg", dpi=300, paper=SMALL)
    m = measure(path, paper_size="A3").page_measures[0]
    assert (m.dpi, m.dpi_source) == (approx(300, abs=0.05), "metadata")


def test_unknown_paper_size_is_refused_even_when_not_needed(tmp_path: Path) -> None:
    path = scan_image(tmp_path / "x.jpg", dpi=300, paper=SMALL)
    with pytest.raises(UsageError):
        measure(path, paper_size="A11")


def test_tiff_resolution_in_centimetres(tmp_path: Path) -> None:
    path = scan_image(tmp_path / "cm.tif", dpi=200, fmt="TIFF", paper=SMALL, dpi_unit="cm")
    assert measure(path).page_measures[0].dpi == approx(200, abs=0.05)


def test_effective_dpi_is_the_coarser_axis(tmp_path: Path) -> None:
    path = tmp_path / "aniso.jpg"
    Image.new("RGB", (600, 300), "white").save(path, "JPEG", dpi=(300, 150))
    assert measure(path).page_measures[0].dpi == approx(150, abs=0.05)


def test_multipage_tiff_names_the_bad_page(tmp_path: Path) -> None:
    path = scan_image(tmp_path / "m.tif", dpi=[300, 150, 300], fmt="TIFF", paper=SMALL)
    r = measure(path)
    assert r.pages == 3
    assert [m.dpi for m in r.page_measures] == approx([300, 150, 300], abs=0.05)
    err = violation(r, IMPORTANT, "nta-scan-important")
    assert str(err) == (
        "SCAN_RESOLUTION_TOO_LOW: page 2 is 150 dpi; nta-scan-important requires 200"
    )


def test_multipage_tiff_measures_each_frame(tmp_path: Path) -> None:
    path = scan_image(
        tmp_path / "m.tif", dpi=[300, 300, 200], mode=["RGB", "L", "1"], fmt="TIFF", paper=SMALL
    )
    r = measure(path)
    assert [m.colour for m in r.page_measures] == ["rgb24", "gray8", "bilevel"]
    assert [m.compression for m in r.page_measures] == ["lzw", "lzw", "ccitt"]
    err = violation(r, IMPORTANT, "nta-scan-important")
    assert str(err).startswith("SCAN_COLOUR_INSUFFICIENT: pages 2 (gray8), 3 (bilevel);")
    check_capture(r, METI, "meti")


def test_tiff_frame_without_resolution_does_not_inherit_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "mixed.tif"
    first = Image.new("L", (300, 400), 255)
    second = Image.new("L", (300, 400), 255)
    with path.open("w+b") as fh, TiffImagePlugin.AppendingTiffWriter(fh) as tf:
        first.save(tf, "TIFF", dpi=(300, 300))
        tf.newFrame()
        second.save(tf, "TIFF", resolution_unit=1, x_resolution=1, y_resolution=1)
        tf.newFrame()
    with pytest.raises(InputError) as info:
        measure(path)
    assert info.value.code == "RESOLUTION_UNKNOWN"
    assert "page 2" in str(info.value)


# ---- images: bad input ----------------------------------------------------------------------


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = bomb_png(tmp_path / "bomb.png")  # 900 MP claimed in a few hundred bytes
    with pytest.raises(InputError) as info:
        measure(path)
    assert info.value.code == "IMAGE_TOO_LARGE"
    assert "900 MP" in str(info.value)


def test_explicit_pixel_limit(tmp_path: Path) -> None:
    path = scan_image(tmp_path / "x.png", dpi=200, fmt="PNG", paper=SMALL)  # 583×827 px
    assert inspect(path, PNG, max_pixels=500_000).pages == 1
    with pytest.raises(InputError) as info:
        inspect(path, PNG, max_pixels=400_000)
    assert info.value.code == "IMAGE_TOO_LARGE"
    assert "583×827 px" in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_image_is_unreadable(tmp_path: Path, fmt: str) -> None:
    whole = scan_image(tmp_path / f"w.{fmt.lower()}", dpi=200, fmt=fmt, paper=SMALL)
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InputError) as info:
        inspect(cut, detect_media_type(whole))
    assert info.value.code == "IMAGE_UNREADABLE"
    assert str(tmp_path) not in str(info.value)


def test_declared_type_must_match_content(tmp_path: Path) -> None:
    png = scan_image(tmp_path / "x.png", dpi=200, fmt="PNG", paper=SMALL)
    with pytest.raises(InputError) as info:
        inspect(png, JPEG)
    assert info.value.code == "IMAGE_UNREADABLE"


# ---- PDFs -----------------------------------------------------------------------------------


def test_scanned_pdf_page_two_too_coarse_is_named(tmp_path: Path) -> None:
    path = scan_pdf(tmp_path / "s.pdf", dpi_per_page=[300, 150, 200], paper="A6")
    r = measure(path)
    assert (r.media_type, r.pages, r.rendered) == (PDF, 3, True)
    assert [m.kind for m in r.page_measures] == ["image"] * 3
    assert [m.dpi for m in r.page_measures] == approx([300, 150, 200], rel=0.002)
    assert {(m.colour, m.compression, m.lossy, m.dpi_source) for m in r.page_measures} == {
        ("rgb24", "jpeg", True, "pdf-page-size")
    }
    err = violation(r, IMPORTANT, "nta-scan-important")
    assert err.code == "SCAN_RESOLUTION_TOO_LOW"
    assert "page 2 is 150 dpi; nta-scan-important requires 200" in str(err)
    assert "page 1" not in str(err) and "page 3" not in str(err)


def test_a4_pdf_scan_at_200_dpi_passes(tmp_path: Path) -> None:
    r = measure(scan_pdf(tmp_path / "a4.pdf", dpi_per_page=[200]))
    m = r.page_measures[0]
    assert (m.width_px, m.height_px) == (1654, 2339)
    check_capture(r, IMPORTANT, "nta-scan-important")


def test_scanned_pdf_gray_and_bilevel(tmp_path: Path) -> None:
    gray = measure(scan_pdf(tmp_path / "g.pdf", dpi_per_page=[200], mode="L", paper="A6"))
    assert gray.page_measures[0].colour == "gray8"
    check_capture(gray, GENERAL, "general")
    assert violation(gray, IMPORTANT).code == "SCAN_COLOUR_INSUFFICIENT"
    bilevel = measure(scan_pdf(tmp_path / "b.pdf", dpi_per_page=[150], mode="1", paper="A6"))
    m = bilevel.page_measures[0]
    assert (m.colour, m.bits_per_component, m.compression, m.lossy) == (
        "bilevel",
        1,
        "png/flate",
        False,
    )
    assert violation(bilevel, METI).code == "SCAN_RESOLUTION_TOO_LOW"  # bilevel needs 200


def test_ocr_text_layer_keeps_a_scan_a_scan(tmp_path: Path) -> None:
    path = scan_pdf(
        tmp_path / "ocr.pdf", dpi_per_page=[150], paper="A6", ocr_text="請求書 INVOICE " * 200
    )
    r = measure(path)
    assert r.page_measures[0].kind == "image"
    assert violation(r, IMPORTANT).code == "SCAN_RESOLUTION_TOO_LOW"


def test_page_cut_into_strips_is_measured_per_strip(tmp_path: Path) -> None:
    path = scan_pdf(tmp_path / "strips.pdf", dpi_per_page=[200, 150], paper="A6", strips=5)
    r = measure(path)
    assert [m.kind for m in r.page_measures] == ["image", "image"]
    assert [m.dpi for m in r.page_measures] == approx([200, 150], rel=0.005)


def test_born_digital_pdf_passes_scan_rules(tmp_path: Path) -> None:
    path = text_pdf(tmp_path / "t.pdf", "Invoice 2024-04\nTotal 10,000 JPY", pages=2, logo=True)
    r = measure(path)
    assert [m.kind for m in r.page_measures] == ["vector", "vector"]
    assert all(m.dpi is None for m in r.page_measures)
    check_capture(r, IMPORTANT, "nta-scan-important")
    check_capture(r, CaptureRules(min_dpi=200, colour="rgb24", lossy_allowed=False), "strict")


def test_born_digital_pdf_over_a_background_picture_is_not_a_scan(tmp_path: Path) -> None:
    r = measure(text_pdf(tmp_path / "bg.pdf", "Quotation", paper="A6", background_dpi=72))
    assert r.page_measures[0].kind == "vector"


def _one_page_pdf(
    path: Path, image: dict[str, object], data: bytes, content: bytes, *, form: bool = False
) -> Path:
    """A 72×72 pt page drawing ``image`` (an XObject dictionary without stream data)."""
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(72, 72))
    xobject = pikepdf.Stream(pdf, data, **image)
    if form:
        inner = pikepdf.Stream(
            pdf,
            b"q 72 0 0 72 0 0 cm /Im0 Do Q",
            Type=pikepdf.Name.XObject,
            Subtype=pikepdf.Name.Form,
            BBox=[0, 0, 72, 72],
            Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=xobject)),
        )
        page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Fm0=inner))
    else:
        page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=xobject))
    page.Contents = pikepdf.Stream(pdf, content)
    pdf.save(path)
    return path


def _image(width: int, height: int, **extra: object) -> dict[str, object]:
    return {
        "Type": pikepdf.Name.XObject,
        "Subtype": pikepdf.Name.Image,
        "Width": width,
        "Height": height,
        "BitsPerComponent": 8,
        **extra,
    }


def test_image_inside_a_form_xobject_is_found(tmp_path: Path) -> None:
    path = _one_page_pdf(
        tmp_path / "form.pdf",
        _image(300, 300, ColorSpace=pikepdf.Name.DeviceGray, Filter=pikepdf.Name.FlateDecode),
        zlib.compress(b"\xff" * 300 * 300),
        b"/Fm0 Do",
        form=True,
    )
    m = measure(path).page_measures[0]
    assert (m.kind, m.colour, m.dpi) == ("image", "gray8", approx(300))


def test_small_image_without_text_is_not_a_scan(tmp_path: Path) -> None:
    # A 1-inch page with a quarter-inch stamp: 6 % of the area.
    path = _one_page_pdf(
        tmp_path / "stamp.pdf",
        _image(10, 10, ColorSpace=pikepdf.Name.DeviceRGB, Filter=pikepdf.Name.FlateDecode),
        zlib.compress(b"\x00" * 300),
        b"q 18 0 0 18 10 10 cm /Im0 Do Q",
    )
    assert measure(path).page_measures[0].kind == "vector"


def test_image_covering_under_half_the_page_is_not_a_scan(tmp_path: Path) -> None:
    # A photo over 40 % of the page (significant, but the page is not "one image").
    path = _one_page_pdf(
        tmp_path / "photo.pdf",
        _image(100, 100, ColorSpace=pikepdf.Name.DeviceGray, Filter=pikepdf.Name.FlateDecode),
        zlib.compress(b"\x00" * 100 * 100),
        b"q 72 0 0 28.8 0 0 cm /Im0 Do Q",
    )
    assert measure(path).page_measures[0].kind == "vector"


def test_text_hidden_under_the_image_keeps_a_scan_a_scan(tmp_path: Path) -> None:
    # Some OCR tools draw the recognised text visibly, then the scan over it.
    text = b"(" + b"RECOGNISED TEXT " * 100 + b")"
    path = _one_page_pdf(
        tmp_path / "under.pdf",
        _image(100, 100, ColorSpace=pikepdf.Name.DeviceGray, Filter=pikepdf.Name.FlateDecode),
        zlib.compress(b"\x00" * 100 * 100),
        b"BT /F1 1 Tf 0 0 Td " + text + b" Tj ET q 72 0 0 72 0 0 cm /Im0 Do Q",
    )
    assert measure(path).page_measures[0].kind == "image"
    # The same text painted over the image makes it a born-digital page.
    over = _one_page_pdf(
        tmp_path / "over.pdf",
        _image(100, 100, ColorSpace=pikepdf.Name.DeviceGray, Filter=pikepdf.Name.FlateDecode),
        zlib.compress(b"\x00" * 100 * 100),
        b"q 72 0 0 72 0 0 cm /Im0 Do Q BT /F1 1 Tf 0 0 Td " + text + b" Tj ET",
    )
    assert measure(over).page_measures[0].kind == "vector"


def test_stencil_mask_is_bilevel(tmp_path: Path) -> None:
    path = _one_page_pdf(
        tmp_path / "mask.pdf",
        {
            "Type": pikepdf.Name.XObject,
            "Subtype": pikepdf.Name.Image,
            "Width": 400,
            "Height": 400,
            "ImageMask": True,
            "BitsPerComponent": 1,
            "Filter": pikepdf.Name.FlateDecode,
        },
        zlib.compress(b"\x55" * 50 * 400),
        b"q 72 0 0 72 0 0 cm /Im0 Do Q",
    )
    m = measure(path).page_measures[0]
    assert (m.colour, m.bits_per_component, m.dpi) == ("bilevel", 1, approx(400))


def test_mixed_requirements_are_both_named() -> None:
    r = _doc(_scan(1, 140, "rgb24"), _scan(2, 300, "gray8"), _scan(3, 180, "bilevel"))
    err = violation(r, METI, "meti")
    assert str(err) == (
        "SCAN_RESOLUTION_TOO_LOW: pages 1 (140 dpi rgb24), 3 (180 dpi bilevel); "
        "meti requires 150 (colour/gray) and 200 (bilevel)"
    )


def test_pdf_image_dpi_is_the_coarser_axis(tmp_path: Path) -> None:
    path = _one_page_pdf(
        tmp_path / "aniso.pdf",
        _image(300, 150, ColorSpace=pikepdf.Name.DeviceGray, Filter=pikepdf.Name.FlateDecode),
        zlib.compress(b"\x00" * 300 * 150),
        b"q 72 0 0 72 0 0 cm /Im0 Do Q",
    )
    assert measure(path).page_measures[0].dpi == approx(150)


def test_image_drawn_rotated_on_a_rotated_page(tmp_path: Path) -> None:
    # A landscape 600×300 px image turned 90° to fill a 72×144 pt (1×2 in) page: 300 dpi.
    path = _one_page_pdf(
        tmp_path / "rot.pdf",
        _image(600, 300, ColorSpace=pikepdf.Name.DeviceGray, Filter=pikepdf.Name.FlateDecode),
        zlib.compress(b"\x80" * 600 * 300),
        b"q 0 144 -72 0 72 0 cm /Im0 Do Q",
    )
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        pdf.pages[0].obj.MediaBox = [0, 0, 72, 144]
        pdf.pages[0].obj.Rotate = 90
        pdf.save(path)
    m = measure(path).page_measures[0]
    assert (m.kind, m.dpi) == ("image", approx(300))


@pytest.mark.parametrize(
    ("colour_space", "expected"),
    [
        ("icc-rgb", "rgb24"),
        ("icc-gray", "gray8"),
        ("indexed", "palette"),
        ("cmyk", "cmyk"),
    ],
)
def test_pdf_colour_spaces(tmp_path: Path, colour_space: str, expected: str) -> None:
    pdf = pikepdf.new()
    spaces: dict[str, tuple[Callable[[], object], int]] = {
        "icc-rgb": (
            lambda: pikepdf.Array([pikepdf.Name.ICCBased, pikepdf.Stream(pdf, b"", N=3)]),
            3,
        ),
        "icc-gray": (
            lambda: pikepdf.Array([pikepdf.Name.ICCBased, pikepdf.Stream(pdf, b"", N=1)]),
            1,
        ),
        "indexed": (
            lambda: pikepdf.Array(
                [pikepdf.Name.Indexed, pikepdf.Name.DeviceRGB, 1, pikepdf.String(b"\0\0\0\xff\0\0")]
            ),
            1,
        ),
        "cmyk": (lambda: pikepdf.Name.DeviceCMYK, 4),
    }
    make_space, components = spaces[colour_space]
    page = pdf.add_blank_page(page_size=(72, 72))
    page.Resources = pikepdf.Dictionary(
        XObject=pikepdf.Dictionary(
            Im0=pikepdf.Stream(
                pdf,
                zlib.compress(b"\x00" * 200 * 200 * components),
                **_image(200, 200, ColorSpace=make_space(), Filter=pikepdf.Name.FlateDecode),
            )
        )
    )
    page.Contents = pikepdf.Stream(pdf, b"q 72 0 0 72 0 0 cm /Im0 Do Q")
    path = tmp_path / "cs.pdf"
    pdf.save(path)
    m = measure(path).page_measures[0]
    assert (m.colour, m.dpi, m.lossy) == (expected, approx(200), False)


def test_jpeg2000_without_colour_space_takes_it_from_the_codestream(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (144, 144), (10, 200, 30)).save(buf, "JPEG2000")
    path = _one_page_pdf(
        tmp_path / "jpx.pdf",
        {
            "Type": pikepdf.Name.XObject,
            "Subtype": pikepdf.Name.Image,
            "Width": 144,
            "Height": 144,
            "Filter": pikepdf.Name.JPXDecode,
        },
        buf.getvalue(),
        b"q 72 0 0 72 0 0 cm /Im0 Do Q",
    )
    m = measure(path).page_measures[0]
    assert (m.colour, m.compression, m.lossy, m.dpi) == ("rgb24", "jpeg2000", True, 144)


def test_inline_image_scan(tmp_path: Path) -> None:
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(36, 36))
    data = b"\x00" * (100 * 100)  # 100×100 px on half an inch: 200 dpi
    page.Contents = pikepdf.Stream(
        pdf, b"q 36 0 0 36 0 0 cm BI /W 100 /H 100 /CS /G /BPC 8 ID " + data + b" EI Q"
    )
    path = tmp_path / "inline.pdf"
    pdf.save(path)
    m = measure(path).page_measures[0]
    assert (m.kind, m.colour, m.dpi, m.compression) == (
        "image",
        "gray8",
        approx(200),
        "none",
    )


def test_huge_image_in_a_pdf_is_refused_before_rendering(tmp_path: Path) -> None:
    # 20 000 × 20 000 px claimed by the dictionary; the data is never decoded.
    path = _one_page_pdf(
        tmp_path / "bomb.pdf",
        _image(20_000, 20_000, ColorSpace=pikepdf.Name.DeviceGray, Filter=pikepdf.Name.FlateDecode),
        zlib.compress(b"\x00" * 1000),
        b"q 72 0 0 72 0 0 cm /Im0 Do Q",
    )
    with pytest.raises(InputError) as info:
        measure(path)
    assert info.value.code == "IMAGE_TOO_LARGE"
    assert "page 1 draws an image of 20000×20000 px" in str(info.value)


def test_encrypted_pdf_is_refused_even_with_an_empty_password(tmp_path: Path) -> None:
    for path in (
        encrypted_pdf(tmp_path / "open.pdf"),
        encrypted_pdf(tmp_path / "locked.pdf", user_password="secret"),
    ):
        with pytest.raises(InputError) as info:
            measure(path)
        assert info.value.code == "PDF_ENCRYPTED"


@pytest.mark.parametrize("fraction", [0.3, 0.9, 0.995])
def test_truncated_pdf_is_unreadable(tmp_path: Path, fraction: float) -> None:
    whole = scan_pdf(tmp_path / "w.pdf", dpi_per_page=[100, 100], paper="A6")
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * fraction)])
    with pytest.raises(InputError) as info:
        measure(cut)
    assert info.value.code == "PDF_UNREADABLE"
    assert str(tmp_path) not in str(info.value)  # the file's name, not where it lies


def test_pdf_header_with_garbage_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "junk.pdf"
    path.write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 100)
    with pytest.raises(InputError) as info:
        measure(path)
    assert info.value.code == "PDF_UNREADABLE"


def test_javascript_is_reported_not_refused(tmp_path: Path) -> None:
    r = measure(pdf_with_active_content(tmp_path / "js.pdf"))
    assert r.active_content == ("javascript", "open-action")
    check_capture(r, CaptureRules(), "einvoice")
    err = violation(r, CaptureRules(reject_active_content=True), "strict")
    assert str(err).startswith("ACTIVE_CONTENT: the document contains javascript, open-action;")


def test_other_active_content_kinds(tmp_path: Path) -> None:
    path = pdf_with_active_content(
        tmp_path / "a.pdf",
        javascript=False,
        launch=True,
        embedded_file=True,
        attachment_annotation=True,
    )
    assert measure(path).active_content == (
        "additional-actions",
        "embedded-files",
        "file-attachment",
        "launch-action",
    )


def test_javascript_name_tree_and_cycles(tmp_path: Path) -> None:
    path = text_pdf(tmp_path / "t.pdf", "x")
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        action = pdf.make_indirect(pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS="1"))
        pdf.Root.Names = pikepdf.Dictionary(
            JavaScript=pikepdf.Dictionary(Names=pikepdf.Array([pikepdf.String("a"), action]))
        )
        # A /Next chain that loops back on itself must not hang the walk.
        loop = pdf.make_indirect(pikepdf.Dictionary(S=pikepdf.Name.GoTo, D=[0, "/Fit"]))
        loop.Next = loop
        pdf.Root.OpenAction = loop
        pdf.save(path)
    r = measure(path)
    assert "javascript" in r.active_content
    assert "open-action" not in r.active_content  # a go-to is not active


def test_plain_pdf_has_no_active_content(tmp_path: Path) -> None:
    assert measure(text_pdf(tmp_path / "t.pdf", "plain")).active_content == ()


# ---- other media ----------------------------------------------------------------------------


def test_xml_and_csv_are_not_measured(tmp_path: Path) -> None:
    xml = tmp_path / "invoice.xml"
    xml.write_bytes(b'<?xml version="1.0"?><Invoice/>')
    r = measure(xml)
    assert r == Readability(XML, 0, (), False, ())
    check_capture(r, CaptureRules(), "e-transaction")
    err = violation(r, IMPORTANT, "nta-scan-important")
    assert err.code == "NOT_A_SCAN"
    assert "application/xml" in str(err) and "nta-scan-important" in str(err)


# ---- check_capture on constructed measurements ---------------------------------------------


def _scan(page: int, dpi: float, colour: str = "rgb24", *, lossy: bool = False) -> PageMeasure:
    return PageMeasure(page, "image", 100, 100, dpi, "metadata", colour, 8, "none", lossy)


def _doc(*pages: PageMeasure) -> Readability:
    return Readability(TIFF, len(pages), pages, True, ())


@pytest.mark.parametrize(
    ("dpi", "passes"), [(200.0, True), (199.5, True), (198.0, True), (197.9, False), (150.0, False)]
)
def test_one_percent_dpi_tolerance(dpi: float, passes: bool) -> None:
    r = _doc(_scan(1, dpi))
    if passes:
        check_capture(r, IMPORTANT, "p")
    else:
        assert violation(r, IMPORTANT).code == "SCAN_RESOLUTION_TOO_LOW"


def test_message_for_a_non_integral_dpi_keeps_a_decimal() -> None:
    err = violation(_doc(_scan(1, 197.94)), IMPORTANT, "p")
    assert "page 1 is 197.9 dpi" in str(err)


@pytest.mark.parametrize(
    ("colour", "rank_ok"),
    [
        ("rgb24", {"rgb24", "gray8", "bilevel"}),
        ("rgb48", {"rgb24", "gray8", "bilevel"}),
        ("cmyk", {"rgb24", "gray8", "bilevel"}),
        ("gray16", {"gray8", "bilevel"}),
        ("gray8", {"gray8", "bilevel"}),
        ("gray4", {"bilevel"}),
        ("palette", {"bilevel"}),
        ("bilevel", {"bilevel"}),
        ("separation", set()),
    ],
)
def test_colour_order(colour: str, rank_ok: set[str]) -> None:
    r = _doc(_scan(1, 600, colour))
    for required in ("rgb24", "gray8", "bilevel", "any"):
        rules = CaptureRules(min_dpi=200, colour=required)
        if required == "any" or required in rank_ok:
            check_capture(r, rules, "p")
        else:
            assert violation(r, rules).code == "SCAN_COLOUR_INSUFFICIENT"


def test_many_failing_pages_are_listed_compactly() -> None:
    r = _doc(*(_scan(n, 150 if n % 2 else 300) for n in range(1, 21)))
    err = violation(r, IMPORTANT, "nta-scan-important")
    assert str(err) == (
        "SCAN_RESOLUTION_TOO_LOW: pages 1, 3, 5, 7, 9 (and 5 more pages) are 150 dpi; "
        "nta-scan-important requires 200"
    )


def test_resolution_checked_before_colour_and_lossy() -> None:
    rules = CaptureRules(min_dpi=200, colour="rgb24", lossy_allowed=False)
    r = _doc(_scan(1, 300, "gray8", lossy=True), _scan(2, 100, lossy=True))
    assert violation(r, rules).code == "SCAN_RESOLUTION_TOO_LOW"


def test_unknown_dpi_on_a_scan_page_is_an_input_error() -> None:
    page = PageMeasure(1, "image", 10, 10, None, None, "rgb24", 8, "none", False)
    with pytest.raises(InputError) as info:
        check_capture(_doc(page), IMPORTANT, "p")
    assert info.value.code == "RESOLUTION_UNKNOWN"


@pytest.mark.parametrize(
    "kwargs", [{"colour": "rgb"}, {"colour": "24bit"}, {"min_dpi": 0}, {"min_dpi_bilevel": -5}]
)
def test_invalid_capture_rules(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        CaptureRules(**kwargs)  # type: ignore[arg-type]
    assert info.value.code == "CAPTURE_RULE_INVALID"


# ---- manifest -------------------------------------------------------------------------------


def test_manifest_of_a_small_document_lists_every_page(tmp_path: Path) -> None:
    r = measure(scan_pdf(tmp_path / "s.pdf", dpi_per_page=[300, 150], paper="A6"))
    manifest = r.to_manifest()
    assert json.loads(json.dumps(manifest, sort_keys=True)) == manifest
    assert manifest["pages"] == 2 and manifest["page_measures_complete"] is True
    assert listed_pages(manifest) == [1, 2]
    assert manifest["min_dpi"] == approx(150, rel=0.002)
    assert manifest["min_dpi_page"] == 2
    assert manifest["compressions"] == {"jpeg": 2}


def test_manifest_stays_bounded_for_a_thousand_pages() -> None:
    pages = [_scan(n, 300) for n in range(1, 1001)]
    pages[699] = _scan(700, 180)
    pages[849] = _scan(850, 400, "bilevel")
    pages[900] = PageMeasure(901, "vector", None, None, None, None, None, None, None, False)
    manifest = _doc(*pages).to_manifest()
    assert listed_pages(manifest) == [*range(1, MANIFEST_PAGES + 1), 700, 850]
    assert manifest["page_measures_complete"] is False
    assert (manifest["scan_pages"], manifest["vector_pages"]) == (999, 1)
    assert (manifest["min_dpi"], manifest["min_dpi_page"]) == (180, 700)
    assert manifest["colours"] == {
        "bilevel": {"pages": 1, "min_dpi": 400},
        "rgb24": {"pages": 998, "min_dpi": 180},
    }
    assert len(json.dumps(manifest)) < 10_000


# ---- samples --------------------------------------------------------------------------------


def test_small_jpeg_receipts_are_distinct_scans_of_the_asked_size(tmp_path: Path) -> None:
    a = small_jpeg(tmp_path / "a.jpg", 1)
    b = small_jpeg(tmp_path / "b.jpg", 2)
    again = small_jpeg(tmp_path / "a2.jpg", 1)
    assert a.read_bytes() != b.read_bytes()
    assert a.read_bytes() == again.read_bytes()
    assert a.stat().st_size == 200_000
    small = small_jpeg(tmp_path / "c.jpg", 3, target_bytes=60_000)
    assert small.stat().st_size == 60_000
    r = measure(a)
    check_capture(r, IMPORTANT, "nta-scan-important")
    assert r.page_measures[0].dpi == approx(200)


def test_errors_are_one_line(tmp_path: Path) -> None:
    path = scan_image(tmp_path / "p.jpg", dpi=200, paper=SMALL, metadata_dpi=72)
    with pytest.raises(EdocError) as info:
        measure(path)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("RESOLUTION_UNKNOWN: ")


def test_a_damaged_tiff_is_rejected_while_other_threads_measure_images(tmp_path: Path) -> None:
    """Measuring an image sets process-wide warnings filters (Pillow's "Corrupt EXIF data"
    becomes a rejection) and redirects fd 2: with files in flight (``ingest --jobs``) another
    thread's measurement must not switch the rejection off."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.hostile import _tiff

    damaged = tmp_path / "exif-cut.tif"
    damaged.write_bytes(_tiff(8, 8, exif_cut=True))
    good = [small_jpeg(tmp_path / f"ok-{i}.jpg", seed=i) for i in range(4)]
    jobs = [damaged if i % 3 == 0 else good[i % 4] for i in range(120)]

    def outcome(path: Path) -> str:
        try:
            measure(path)
        except InputError as exc:
            return exc.code
        return "measured"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(outcome, jobs))
    assert {r for p, r in zip(jobs, results, strict=True) if p == damaged} == {"IMAGE_UNREADABLE"}
    assert {r for p, r in zip(jobs, results, strict=True) if p != damaged} == {"measured"}
