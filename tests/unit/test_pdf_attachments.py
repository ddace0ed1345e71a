"""Finding the XML invoice inside a hybrid PDF: bounded, never raising, the declared one first."""

from __future__ import annotations

import zlib
from pathlib import Path

import pikepdf

from edoc.inspection.einvoice import EINVOICE_TOO_LARGE, read_einvoice
from edoc.inspection.pdf_attachments import find_xml_attachment
from tests import einvoice_samples as samples
from tests.pdf_invoice_samples import CII, hybrid_pdf
from tests.samples import encrypted_pdf, text_pdf


def test_the_attached_invoice_reads_as_the_xml_would(tmp_path: Path) -> None:
    data = samples.pint_invoice(number="INV-PDF-1")
    found = find_xml_attachment(hybrid_pdf(tmp_path / "a.pdf", {"factur-x.xml": data}))
    assert found is not None
    assert (found.name, found.mime_type, found.relationship) == ("factur-x.xml", "text/xml",
                                                                 "/Data")
    assert found.data == data and found.problem is None
    reading = read_einvoice(found.data)
    assert reading.ok and reading.invoice is not None
    assert reading.invoice.number == "INV-PDF-1"


def test_the_declared_attachment_wins_over_others(tmp_path: Path) -> None:
    pint = samples.pint_invoice(number="DECLARED")
    path = hybrid_pdf(tmp_path / "b.pdf", {"a-notes.xml": b"<notes/>", "invoice.xml": pint},
                      declare="invoice.xml", relationship="/Alternative")
    found = find_xml_attachment(path)
    assert found is not None and found.name == "invoice.xml" and found.data == pint


def test_non_xml_attachments_are_ignored(tmp_path: Path) -> None:
    path = hybrid_pdf(tmp_path / "c.pdf", {"photo.png": b"\x89PNG..."}, mime_type="image/png")
    assert find_xml_attachment(path) is None


def test_an_xml_mime_type_counts_without_the_extension(tmp_path: Path) -> None:
    path = hybrid_pdf(tmp_path / "d.pdf", {"invoice": samples.pint_invoice()},
                      mime_type="application/xml")
    found = find_xml_attachment(path)
    assert found is not None and found.name == "invoice"


def test_no_attachment_broken_or_encrypted_is_no_einvoice(tmp_path: Path) -> None:
    assert find_xml_attachment(text_pdf(tmp_path / "plain.pdf", "no attachment")) is None
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\nnot really a pdf\n%%EOF\n")
    assert find_xml_attachment(broken) is None
    assert find_xml_attachment(tmp_path / "missing.pdf") is None
    assert find_xml_attachment(encrypted_pdf(tmp_path / "enc.pdf")) is None


def test_a_compression_bomb_stops_at_the_cap(tmp_path: Path) -> None:
    path = hybrid_pdf(tmp_path / "bomb.pdf", {"factur-x.xml": b"<x/>"})
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        stream = pdf.attachments["factur-x.xml"].get_file().obj
        stream.write(zlib.compress(b" " * 10_000_000, 9), filter=pikepdf.Name.FlateDecode)
        del stream.Params  # no declared size: only the decoder's cap stops it
        pdf.save(path)
    found = find_xml_attachment(path, max_bytes=1_000_000)
    assert found is not None and found.data is None
    assert found.problem is not None and found.problem[0] == EINVOICE_TOO_LARGE


def test_the_attachment_limit_is_the_einvoice_limit(tmp_path: Path) -> None:
    data = samples.pint_invoice()
    path = hybrid_pdf(tmp_path / "big.pdf", {"factur-x.xml": data})
    found = find_xml_attachment(path, max_bytes=len(data) - 1)
    assert found is not None and found.data is None
    assert find_xml_attachment(path, max_bytes=len(data)) is not None


def test_a_cii_attachment_is_recognised(tmp_path: Path) -> None:
    found = find_xml_attachment(hybrid_pdf(tmp_path / "cii.pdf", {"factur-x.xml": CII}))
    assert found is not None and found.data == CII
    reading = read_einvoice(CII)  # an empty CII shell: read, as CII, with nothing in it
    assert reading.code == "OK" and reading.cii and reading.invoice is not None
    assert reading.invoice.syntax == "cii" and reading.invoice.spec is None
    assert reading.invoice.number is None and reading.detail.endswith("(not JP PINT)")


def test_only_sixteen_attachments_are_looked_at(tmp_path: Path) -> None:
    many = {f"{i:02d}.bin": b"x" for i in range(20)}
    many["zz-invoice.xml"] = samples.pint_invoice()
    path = hybrid_pdf(tmp_path / "many.pdf", many, declare="00.bin", mime_type="")
    assert find_xml_attachment(path) is None


def test_a_pdf_with_a_user_password_is_no_einvoice(tmp_path: Path) -> None:
    assert find_xml_attachment(encrypted_pdf(tmp_path / "pw.pdf", user_password="pw")) is None
