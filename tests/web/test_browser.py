"""The viewer in a real browser: Debian's chromium (installed by ``.ci/run``) driven by
Playwright against a real ``edoc serve`` process on a free port. An auditor logs in,
searches by part of a counterparty's name, opens a record, zooms, runs Verify, downloads
the evidence bundle, sees a correction's history, and logs out.

No skip: without chromium this test fails (CI installs it; `playwright install` is never
run — the browser is the distribution's).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.conftest import PASSWORDS, WebArchive, build_archive

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, WebArchive]]:
    w = build_archive(tmp_path_factory.mktemp("browser"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (tmp_path_factory.mktemp("serve") / "serve.log").open("w+b")
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "--archive",
                             str(w.edoc.archive), "serve", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/login", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"edoc serve did not start: {log.read().decode(errors='replace')}")
            time.sleep(0.2)
        yield base, w
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_an_auditor_at_the_screen(served: tuple[str, WebArchive], tmp_path: Path) -> None:
    assert CHROMIUM.exists(), ("chromium is not installed (apt-get install -y chromium; "
                               ".ci/run installs it): the browser test cannot run")
    from playwright.sync_api import sync_playwright

    base, w = served
    ids = w.ids
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            context = browser.new_context(accept_downloads=True, locale="ja-JP")
            page = context.new_page()
            page.set_default_timeout(30_000)
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text)
                    if m.type == "error" else None)

            # not logged in: the login page, in Japanese
            page.goto(base + "/search")
            assert page.url.startswith(base + "/login")
            assert page.locator("html").get_attribute("lang") == "ja"
            page.fill("#account", "audrey")
            page.fill("#password", PASSWORDS["audrey"])
            page.click("#login-submit")
            page.wait_for_url(base + "/search")

            # search by a fragment of the counterparty's name
            page.fill("#counterparty", "山田商")
            page.click("#search-submit")
            page.wait_for_selector("#hits")
            links = page.locator("a.record-link")
            assert links.count() == 1
            assert links.first.inner_text() == ids["scan"]
            links.first.click()
            page.wait_for_url(f"{base}/records/{ids['scan']}")
            assert "株式会社山田商事" in page.inner_text("#metadata")

            # the page image is drawn, and zoom makes it larger
            img = page.locator("#pages img.page").first
            img.wait_for()
            page.wait_for_function(
                "() => { const i = document.querySelector('#pages img.page');"
                " return i && i.complete && i.naturalWidth > 0; }")
            before = img.bounding_box()
            assert before is not None
            page.click("#zoom-in")
            page.click("#zoom-in")
            after = img.bounding_box()
            assert after is not None and after["width"] > before["width"] * 1.5
            assert page.get_attribute("#pages", "data-scale") == "2.25"
            page.click("#zoom-reset")

            # Verify: every check of every version
            page.click("#verify")
            page.wait_for_selector("#verify-status")
            assert page.inner_text("#verify-status") == "PASS"
            assert page.locator("table.checks tr.pass").count() >= 5
            page.go_back()
            page.wait_for_selector("#bundle")

            # the evidence bundle downloads as a zip
            with page.expect_download() as dl:
                page.click("#bundle")
            saved = tmp_path / dl.value.suggested_filename
            dl.value.save_as(saved)
            assert saved.name == f"evidence-{ids['scan']}.zip"
            with zipfile.ZipFile(saved) as z:
                assert "VERIFY.md" in z.namelist()

            # a correction's history (訂正削除履歴), each version viewable
            page.goto(f"{base}/records/{ids['corrected']}")
            history = page.inner_text("#history")
            assert "金額の誤り" in history
            assert page.locator("#history a.version-link").count() == 2
            page.locator("#history a.version-link").first.click()
            page.wait_for_url(f"{base}/records/{ids['corrected']}?v=1")
            assert "¥3,300" in page.inner_text("#metadata")

            # English on request
            page.goto(f"{base}/records/{ids['corrected']}?lang=en")
            assert "Correction and deletion history" in page.inner_text("body")

            # log out: the session is over
            page.click("#logout")
            page.wait_for_url(base + "/login")
            page.goto(base + "/search")
            assert page.url.startswith(base + "/login")
            csp = [p for p in problems if "Content Security Policy" in p]
            assert csp == [], csp  # the viewer's own script and styles obey its CSP
        finally:
            browser.close()

    code, doc = w.edoc.json("audit-log")
    assert code == 0
    seen = {(e["actor"], e["action"]) for e in doc["entries"]}
    for action in ("web-login", "search", "show", "get", "verify", "evidence", "web-logout"):
        assert ("web:audrey", action) in seen, action
