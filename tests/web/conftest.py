"""One real archive for the viewer's tests: records ingested through the real CLI (a scan,
a PDF, a corrected record, an e-invoice, a PDF with JavaScript, an HTML and an SVG file),
accounts added through ``edoc user add``, and a Starlette TestClient over the real app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from cli import cli
from edoc.services.archive import Archive
from edoc.web.app import create_app
from tests import samples
from tests.einvoice_samples import TWO_RATES, pint_invoice
from tests.helpers import Edoc

PASSWORDS = {"audrey": "correct horse battery", "sam": "staff password 12",
             "ada": "admin password 34"}
ROLES = {"audrey": "auditor", "sam": "staff", "ada": "admin"}


@dataclass
class WebArchive:
    edoc: Edoc
    ids: dict[str, str]


def add_user(e: Edoc, name: str, role: str, password: str) -> None:
    res = CliRunner().invoke(cli, ["--archive", str(e.archive), "user", "add", name,
                                   "--role", role, "--password-stdin"],
                             input=password + "\n", catch_exceptions=False)
    assert res.exit_code == 0, res.output


def _ingest(e: Edoc, path: Path, *args: str) -> str:
    code, doc = e.json("ingest", str(path), *args)
    assert code == 0, doc
    return str(doc["results"][0]["record_id"])


def build_archive(root: Path) -> WebArchive:
    e = Edoc(root / "archive")
    assert e("init", str(e.archive), "--organisation", "テスト株式会社").exit_code == 0
    ids: dict[str, str] = {}
    scan = root / "scan.png"
    samples.scan_image(scan, dpi=200, mode="RGB", fmt="PNG")
    ids["scan"] = _ingest(e, scan, "--profile", "general", "--date", "2024-05-10",
                          "--amount", "10800", "--counterparty", "株式会社山田商事",
                          "--doc-type", "invoice", "--ledger-ref", "JV-2024-001")
    pdf = root / "contract.pdf"
    samples.text_pdf(pdf, "contract", pages=2)
    ids["pdf"] = _ingest(e, pdf, "--profile", "general", "--date", "2024-06-01",
                         "--amount", "500000", "--counterparty", "有限会社鈴木工業",
                         "--doc-type", "contract")
    scan2 = root / "scan2.png"
    samples.scan_image(scan2, dpi=210, mode="RGB", fmt="PNG")
    corrected = root / "receipt.png"
    samples.scan_image(corrected, dpi=220, mode="RGB", fmt="PNG")
    ids["corrected"] = _ingest(e, scan2, "--profile", "general", "--date", "2024-07-01",
                               "--amount", "3300", "--counterparty", "株式会社山田運輸",
                               "--doc-type", "receipt")
    res = e("correct", ids["corrected"], str(corrected), "--reason", "金額の誤り",
            "--amount", "3800")
    assert res.exit_code == 0, res.output
    inv = root / "invoice.xml"
    inv.write_bytes(pint_invoice(lines=TWO_RATES, number="INV-2024-0420"))
    ids["einvoice"] = _ingest(e, inv, "--profile", "nta-electronic-transaction",
                              "--date", "2024-04-01", "--amount", "20157",
                              "--counterparty", "株式会社サンプル商事")
    js = root / "active.pdf"
    samples.pdf_with_active_content(js, javascript=True)
    ids["js_pdf"] = _ingest(e, js, "--profile", "general", "--date", "2024-08-01",
                            "--amount", "1", "--counterparty", "=HYPERLINK(\"x\")")
    html = root / "page.html"
    html.write_bytes(b"<html><body><script>alert(1)</script></body></html>")
    svg = root / "image.svg"
    svg.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
                    b"</svg>")
    for name, path in (("html", html), ("svg", svg)):
        code, doc = e.json("ingest", str(path), "--profile", "general", "--date",
                           "2024-09-01", "--amount", "2", "--counterparty", "Script Inc")
        if code == 0:
            ids[name] = str(doc["results"][0]["record_id"])
    for name, password in PASSWORDS.items():
        add_user(e, name, ROLES[name], password)
    return WebArchive(e, ids)


@pytest.fixture(scope="module")
def web_archive(tmp_path_factory: pytest.TempPathFactory) -> WebArchive:
    return build_archive(tmp_path_factory.mktemp("web"))


@pytest.fixture
def client(web_archive: WebArchive) -> Iterator[TestClient]:
    archive = Archive.open(str(web_archive.edoc.archive))
    try:
        with TestClient(create_app(archive), base_url="https://testserver",
                        follow_redirects=False) as c:
            yield c
    finally:
        archive.close()


def login_csrf(c: TestClient) -> str:
    page = c.get("/login")
    assert page.status_code == 200
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m is not None
    return m.group(1)


def login(c: TestClient, name: str, password: str | None = None) -> str:
    """Log in; the session's CSRF token (read from the page, as a browser would)."""
    token = login_csrf(c)
    res = c.post("/login", data={"csrf_token": token, "account": name,
                                 "password": password or PASSWORDS[name], "next": "/search"})
    assert res.status_code == 302, res.text
    return page_csrf(c)


def page_csrf(c: TestClient) -> str:
    page = c.get("/search")
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m is not None, page.text
    return m.group(1)
